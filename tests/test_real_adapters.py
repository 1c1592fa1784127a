"""Adapters on a real model's shapes (SmolLM2-135M: tied embeddings, GQA with 9 query and
3 key/value heads, 30 layers): every PEFT kind made by PEFT on this model, and a RaSA
checkpoint in the reference layout, merged by evalsuite in fp32, give the logits of PEFT's
own model (or of the RaSA forward written from the paper) within 1e-4; the exported RaSA
LoRA served by real vLLM generates the merged model's greedy tokens."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PEFT_KINDS, requires_vllm
from test_merge_exact import _rasa_hooks

from evalsuite.adapters import export_lora, load, merge
from evalsuite.testing.checkpoints import trainer_dir, write_rasa
from evalsuite.testing.tiny_model import TARGET_MODULES

TOL = 1e-4
NEW_TOKENS = 12  # greedy tokens compared per prompt (4 prompts)
TEXTS = ["def fib(n):\n    if n < 2:\n        return n\n", "Let $x^2 = 16$. Then $x = \\pm 4$."]


@pytest.fixture(scope="module")
def real_base(smollm2):
    """The base in fp32 (its bf16 weights widened exactly) and a batch of real tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(smollm2)
    ids = [tok(t)["input_ids"] for t in TEXTS]
    n = min(len(i) for i in ids)
    return model, torch.tensor([i[:n] for i in ids])


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _config(kind: str):
    from peft import AdaLoraConfig, LoraConfig, VeraConfig

    targets = list(TARGET_MODULES)
    return {
        "lora": lambda: LoraConfig(r=8, lora_alpha=16, target_modules=targets),
        "rslora": lambda: LoraConfig(r=8, lora_alpha=16, use_rslora=True, target_modules=targets),
        "dora": lambda: LoraConfig(r=8, lora_alpha=16, use_dora=True, target_modules=targets),
        "vera": lambda: VeraConfig(r=16, target_modules=targets),
        "adalora": lambda: AdaLoraConfig(
            init_r=6, target_r=4, lora_alpha=12, total_step=10, target_modules=targets
        ),
    }[kind]()


@pytest.mark.parametrize("kind", PEFT_KINDS)
def test_peft_kinds_on_the_real_model_merge_like_peft(kind, smollm2, real_base, tmp_path):
    from peft import get_peft_model

    base, ids = real_base
    torch.manual_seed(7)
    peft_model = get_peft_model(copy.deepcopy(base), _config(kind))
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.02)
    ckpt = trainer_dir(tmp_path / "run", step=10, epoch=1.0)
    peft_model.save_pretrained(ckpt)
    assert load(ckpt).kind == kind
    reference = _logits(peft_model.eval(), ids)
    del peft_model
    merged = merge(smollm2, ckpt, tmp_path / "merged", dtype="float32", progress=False)
    ours = _logits(_load(merged), ids)
    diff = (ours - reference).abs().max().item()
    assert diff <= TOL, f"{kind}: max |logit diff| vs PEFT = {diff:.3g}"
    assert (ours - _logits(base, ids)).abs().max().item() > 1e-2, "the adapter changed nothing"


def _load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def real_rasa(smollm2, tmp_path_factory) -> Path:
    ckpt = trainer_dir(tmp_path_factory.mktemp("real-rasa"), step=30, epoch=1.0)
    return write_rasa(ckpt, smollm2, TARGET_MODULES, r=16, k=2, alpha=32, seed=11, std=0.01)


@pytest.fixture(scope="module")
def real_rasa_merged(smollm2, real_rasa, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real-rasa-merged") / "m"
    return merge(smollm2, real_rasa, out, dtype="float32", progress=False)


def test_rasa_on_the_real_model_merges_like_its_forward(real_base, real_rasa, real_rasa_merged):
    base, ids = real_base
    reference_model = copy.deepcopy(base)
    handles = _rasa_hooks(reference_model, real_rasa)
    reference = _logits(reference_model, ids)
    for h in handles:
        h.remove()
    ours = _logits(_load(real_rasa_merged), ids)
    diff = (ours - reference).abs().max().item()
    assert diff <= TOL, f"RaSA: max |logit diff| vs the paper's forward = {diff:.3g}"
    assert (ours - _logits(base, ids)).abs().max().item() > 1e-2


def test_vllm_serves_the_exported_rasa_lora_like_the_merged_model(smollm2, tmp_path):
    """A larger update than above (std 0.03), so it changes greedy tokens."""
    requires_vllm()
    real_rasa = write_rasa(
        trainer_dir(tmp_path / "run", step=30, epoch=1.0), smollm2, TARGET_MODULES,
        r=16, k=2, alpha=32, seed=12, std=0.03,
    )  # fmt: skip
    real_rasa_merged = merge(smollm2, real_rasa, tmp_path / "merged", dtype="float32")
    lora = export_lora(real_rasa, tmp_path / "lora", pad_to="auto")
    rank = json.loads((lora / "adapter_config.json").read_text())["r"]
    assert rank == 128  # r - k + L*k = 14 + 30*2 = 74, padded to the next rank vLLM takes
    script = Path(__file__).with_name("vllm_greedy.py")
    done = subprocess.run(
        [sys.executable, str(script), str(smollm2), str(lora), str(rank), str(NEW_TOKENS)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    served = {
        label: json.loads(payload)
        for label, _, payload in (line.partition(" ") for line in done.stdout.splitlines())
        if label in ("TOKENS", "LORA")
    }
    merged = _hf_greedy(real_rasa_merged, NEW_TOKENS)
    assert served["LORA"] == merged
    assert served["LORA"] != served["TOKENS"], "the adapter changed no greedy token"


def _hf_greedy(model_dir: Path, max_new: int) -> list[list[int]]:
    """Greedy tokens from transformers for vllm_greedy.py's prompts, one at a time."""
    from transformers import AutoTokenizer
    from vllm_greedy import PROMPTS

    model, tok = _load(model_dir), AutoTokenizer.from_pretrained(model_dir)
    out = []
    for prompt in PROMPTS:
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, max_new_tokens=max_new, do_sample=False)
        row = gen[0, ids.shape[1] :].tolist()
        out.append(row[: row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row)
    return out
