"""The training helper (evalsuite.training) on the tiny model, and its shipped training sets.

Each method trains 2 epochs of a few steps; the checkpoints must be where a HF Trainer puts
them, in the method's layout, and evalsuite's merge of each must give the logits of an
independent route: PEFT's own ``merge_and_unload`` for LoRA/rsLoRA, and for RaSA the paper's
forward written here from the saved tensors (hooks adding [B_i|B_S] diag(d_i) [A_i;A_S] x
to the base's Linears), not from evalsuite's reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, load_model, logits_of
from safetensors.torch import load_file

from evalsuite.adapters.loading import load
from evalsuite.adapters.merge import merge
from evalsuite.training import TrainSettings, finetune
from evalsuite.training.datasets import code_examples, math_examples, stdlib_functions
from evalsuite.training.finetune import DONE_FILE, TARGET_MODULES

EXAMPLES = [
    ("Add two numbers.\n### Response:\n", "def add(a, b):\n    return a + b\n"),
    ("What is 2+2?\n### Response:\n", "The answer is $\\boxed{4}$."),
    ("Reverse a string.\n### Response:\n", "def rev(s):\n    return s[::-1]\n"),
]


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "math" / "test.jsonl").is_file():
        pytest.skip(f"the evaluation data is not at {SHARED_DATA}")
    return SHARED_DATA


def _settings(method: str) -> TrainSettings:
    return TrainSettings(method=method, r=4, alpha=8, rasa_k=1, epochs=2, learning_rate=5e-3,
                         batch_size=2, max_length=64)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """method -> (run_dir, checkpoints, how many times a callback saw a save)."""
    from transformers import TrainerCallback

    class CountSaves(TrainerCallback):
        saves = 0

        def on_save(self, args, state, control, **kwargs):
            CountSaves.saves += 1

    out = {}
    for method in ("lora", "rslora", "rasa"):
        CountSaves.saves = 0
        run_dir = tmp_path_factory.mktemp(f"train-{method}")
        ckpts = finetune(tiny_base, run_dir, EXAMPLES, _settings(method), callbacks=[CountSaves()])
        out[method] = (run_dir, ckpts, CountSaves.saves)
    return out


@pytest.mark.parametrize("method", ["lora", "rslora", "rasa"])
def test_one_checkpoint_per_epoch_in_the_methods_layout(trained, method):
    _, ckpts, saves = trained[method]
    assert [c.name for c in ckpts] == ["checkpoint-2", "checkpoint-4"]  # 3 examples, batch 2
    assert saves == 2
    epochs = [json.loads((c / "trainer_state.json").read_text())["epoch"] for c in ckpts]
    assert epochs == [1.0, 2.0]
    config = json.loads((ckpts[-1] / "adapter_config.json").read_text())
    keys = set(load_file(ckpts[-1] / "adapter_model.safetensors"))
    assert not any("embed_tokens" in k or k.endswith(".q_proj.weight") for k in keys)  # no base
    if method == "rasa":
        assert (config["peft_type"], config["r"], config["rasa_k"]) == ("RASA", 4, 1)
        assert "base_model.rasa_shared_A.self_attn__q_proj.weight" in keys
    else:
        assert (config["peft_type"], config["r"]) == ("LORA", 4)
        assert config["use_rslora"] is (method == "rslora")
    assert {k.split(".")[-3] for k in keys if "layers." in k} == set(TARGET_MODULES)


@pytest.mark.parametrize("method", ["lora", "rslora"])
def test_peft_checkpoints_merge_to_peft_logits(trained, method, tiny_base, token_batch, tmp_path):
    from peft import PeftModel

    for ckpt in trained[method][1]:
        reference = PeftModel.from_pretrained(load_model(tiny_base), ckpt).merge_and_unload()
        merged = load_model(merge(tiny_base, ckpt, tmp_path / ckpt.name))
        assert torch.allclose(logits_of(merged, token_batch), logits_of(reference, token_batch),
                              atol=1e-4)  # fmt: skip


def _paper_forward(base: Path, ckpt: Path, ids: torch.Tensor) -> torch.Tensor:
    """RaSA's forward from the paper's formula and the saved tensors alone."""
    tensors = {k: v.float() for k, v in load_file(ckpt / "adapter_model.safetensors").items()}
    model = load_model(base)
    for name, module in model.named_modules():
        key = f"base_model.model.{name}"
        if f"{key}.rasa_A.weight" not in tensors:
            continue
        mtype = name.split("layers.")[1].split(".", 1)[1].replace(".", "__")
        a = torch.cat([tensors[f"{key}.rasa_A.weight"],
                       tensors[f"base_model.rasa_shared_A.{mtype}.weight"]])  # fmt: skip
        b = torch.cat([tensors[f"{key}.rasa_B.weight"],
                       tensors[f"base_model.rasa_shared_B.{mtype}.weight"]], 1)  # fmt: skip
        d = tensors[f"{key}.rasa_mixing.weight"]

        def hook(mod, args, output, a=a, b=b, d=d):
            return output + ((args[0] @ a.T) * d) @ b.T

        module.register_forward_hook(hook)
    return logits_of(model, ids)


def test_rasa_checkpoints_merge_to_the_paper_forward(trained, tiny_base, token_batch, tmp_path):
    base_logits = logits_of(load_model(tiny_base), token_batch)
    for ckpt in trained["rasa"][1]:
        adapter = load(ckpt)
        assert adapter.kind == "rasa" and adapter.num_layers == 3
        expected = _paper_forward(tiny_base, ckpt, token_batch)
        assert not torch.allclose(expected, base_logits, atol=1e-3)  # training moved it
        merged = load_model(merge(tiny_base, ckpt, tmp_path / ckpt.name))
        assert torch.allclose(logits_of(merged, token_batch), expected, atol=1e-4)


def test_a_done_run_is_reused_and_a_half_trained_one_retrained(trained, tiny_base):
    run_dir, ckpts, _ = trained["lora"]
    stamp = (ckpts[0] / "adapter_model.safetensors").stat().st_mtime_ns
    assert finetune(tiny_base, run_dir, EXAMPLES, _settings("lora")) == ckpts
    assert (ckpts[0] / "adapter_model.safetensors").stat().st_mtime_ns == stamp
    (run_dir / DONE_FILE).unlink()  # as if training had stopped after its last epoch
    (run_dir / "checkpoint-4").rename(run_dir / "checkpoint-99")
    again = finetune(tiny_base, run_dir, EXAMPLES, _settings("lora"))
    assert [c.name for c in again] == ["checkpoint-2", "checkpoint-4"]
    assert (run_dir / DONE_FILE).is_file()


def test_math_training_set_regenerates_and_avoids_math500(shared_data, tmp_path):
    from evalsuite.training.datasets import MATH_FILE
    from evalsuite.training.select_math import main

    out = tmp_path / "math_train.jsonl"
    main([str(shared_data / "math" / "test.jsonl"), str(shared_data / "math500" / "test.jsonl"),
          str(out)])  # fmt: skip
    assert out.read_bytes() == MATH_FILE.read_bytes()
    held_out = {json.loads(line)["problem"] for line in
                (shared_data / "math500" / "test.jsonl").read_text().splitlines()}  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 301 and not {r["problem"] for r in rows} & held_out
    prompt, response = math_examples(limit=7)[0]
    assert prompt.endswith("Let's think step by step.") and "\\boxed{" in response


def test_code_pairs_are_stdlib_functions_not_humaneval(shared_data):
    import gzip

    pairs = stdlib_functions()
    assert len(pairs) >= 50 and pairs == stdlib_functions()  # deterministic
    raw = gzip.decompress((shared_data / "humaneval_plus" / "HumanEvalPlus.jsonl.gz").read_bytes())
    humaneval = {json.loads(line)["entry_point"] for line in raw.decode().splitlines()}
    assert not {doc["entry_point"] for doc, _ in pairs} & humaneval
    for doc, body in pairs:  # prompt + body is the function's own source again
        compile(doc["prompt"] + body.removeprefix("\n"), doc["task_id"], "exec")
    prompt, body = code_examples(limit=1)[0]
    assert prompt.startswith("Below is an instruction") and prompt.endswith('"""')
