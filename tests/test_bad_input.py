"""Bad checkpoints and bases: a clear AdapterError naming file, tensor and expectation.

The CLI turns each into one line on stderr and exit code 2, and nothing is written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalsuite import cli
from evalsuite.adapters import AdapterError, export_lora, load, merge
from evalsuite.testing.tiny_model import build_tiny_llama

WEIGHTS = "adapter_model.safetensors"
KEY = "base_model.model.model.layers.1.self_attn.k_proj"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_tensors(ckpt: Path, edit) -> None:
    sd = load_file(ckpt / WEIGHTS)
    edit(sd)
    save_file(sd, ckpt / WEIGHTS)


def _edit_config(ckpt: Path, **changes) -> None:
    cfg = json.loads((ckpt / "adapter_config.json").read_text())
    cfg.update(changes)
    (ckpt / "adapter_config.json").write_text(json.dumps(cfg))


@pytest.fixture(scope="module")
def other_bases(tmp_path_factory):
    """Bases the fixtures' adapters were not made for: wider, and shallower."""
    root = tmp_path_factory.mktemp("other-bases")
    return {
        "wider": build_tiny_llama(root / "wider", hidden=96),
        "shallower": build_tiny_llama(root / "shallower", num_layers=2),
        "narrower-mlp": build_tiny_llama(root / "narrower-mlp", intermediate=96),
    }


def _case(name, tmp, lora, rasa, base, other_bases):
    """(adapter dir, base dir, words the message must contain) for one kind of bad input."""
    if name == "no-config":
        bad = _copy(lora, tmp / "c")
        (bad / "adapter_config.json").unlink()
        return bad, base, ["no adapter_config.json", str(bad)]
    if name == "config-not-json":
        bad = _copy(lora, tmp / "c")
        (bad / "adapter_config.json").write_text("{'r': 8,")
        return bad, base, ["adapter_config.json", "not valid JSON"]
    if name == "unknown-peft-type":
        bad = _copy(lora, tmp / "c")
        _edit_config(bad, peft_type="IA3")
        return bad, base, ["'IA3'", "LORA", "RASA", "adapter_config.json"]
    if name == "missing-tensor":
        bad = _copy(rasa, tmp / "c")
        _edit_tensors(bad, lambda sd: sd.pop(f"{KEY}.rasa_B.weight"))
        return bad, base, [WEIGHTS, f"{KEY}.rasa_B.weight", "missing"]
    if name == "missing-shared-pool":
        bad = _copy(rasa, tmp / "c")
        _edit_tensors(bad, lambda sd: sd.pop("base_model.rasa_shared_A.mlp__up_proj.weight"))
        return bad, base, [WEIGHTS, "rasa_shared_A.mlp__up_proj", "missing"]
    if name == "rank-mismatch":
        bad = _copy(lora, tmp / "c")
        _edit_config(bad, r=4)
        return bad, base, [WEIGHTS, "lora_A.weight", "expected [4, *]", "r=4"]
    if name == "nan":
        bad = _copy(rasa, tmp / "c")

        def poison(sd):
            sd[f"{KEY}.rasa_mixing.weight"][3] = float("nan")

        _edit_tensors(bad, poison)
        return bad, base, [WEIGHTS, f"{KEY}.rasa_mixing.weight", "NaN/Inf"]
    if name == "inf":
        bad = _copy(lora, tmp / "c")

        def poison(sd):
            sd[f"{KEY}.lora_A.weight"][0, 0] = float("inf")

        _edit_tensors(bad, poison)
        return bad, base, [WEIGHTS, f"{KEY}.lora_A.weight", "NaN/Inf"]
    if name == "other-hidden-size":
        return rasa, other_bases["wider"], ["hidden size 64", "hidden size 96", "another base"]
    if name == "other-mlp-width":
        return (
            rasa,
            other_bases["narrower-mlp"],
            [
                "model.layers.0.mlp.down_proj.weight",
                "shape [64, 96]",
                "expects [64, 128]",
            ],
        )
    if name == "other-layer-count":
        return lora, other_bases["shallower"], ["layer 2", "has 2 layers", "another base"]
    if name == "base-without-weights":
        empty = tmp / "empty-base"
        empty.mkdir()
        shutil.copy2(base / "config.json", empty / "config.json")
        return lora, empty, [str(empty), "no model weights"]
    if name == "base-only-bin":
        binary = tmp / "bin-base"
        binary.mkdir()
        torch.save({"w": torch.zeros(1)}, binary / "pytorch_model.bin")
        return lora, binary, ["only PyTorch .bin", "safetensors"]
    raise KeyError(name)


CASES = [
    "no-config",
    "config-not-json",
    "unknown-peft-type",
    "missing-tensor",
    "missing-shared-pool",
    "rank-mismatch",
    "nan",
    "inf",
    "other-hidden-size",
    "other-mlp-width",
    "other-layer-count",
    "base-without-weights",
    "base-only-bin",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_named_and_nothing_is_written(
    case, tmp_path, lora_checkpoint, rasa_checkpoint, tiny_base, other_bases, capsys, monkeypatch
):
    adapter, base, words = _case(
        case, tmp_path, lora_checkpoint, rasa_checkpoint, tiny_base, other_bases
    )
    out = tmp_path / "out" / "merged"
    with pytest.raises(AdapterError) as err:
        merge(base, adapter, out)
    for word in words:
        assert word in str(err.value), f"{word!r} not in: {err.value}"
    assert not out.parent.exists() or not any(out.parent.iterdir())

    argv = ["evalsuite", "merge", "--base", str(base), "--adapter", str(adapter), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "error:" in stderr and words[0] in stderr and "Traceback" not in stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_real_entry_point_prints_no_traceback(tmp_path, lora_checkpoint):
    bad = _copy(lora_checkpoint, tmp_path / "bad")
    _edit_config(bad, peft_type="LOHA")
    exe = Path(sys.executable).with_name("evalsuite")
    done = subprocess.run([str(exe), "adapter", "info", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "peft_type 'LOHA'" in done.stderr and "Traceback" not in done.stderr


def test_base_rewriting_init_is_refused(lora_checkpoint, tmp_path):
    bad = _copy(lora_checkpoint, tmp_path / "pissa")
    _edit_config(bad, init_lora_weights="pissa_niter_4")
    with pytest.raises(AdapterError, match="path_initial_model_for_weight_conversion"):
        load(bad)


def test_export_refuses_full_fine_tunes(tiny_base, tmp_path):
    with pytest.raises(AdapterError, match="full fine-tune has no LoRA form"):
        export_lora(tiny_base, tmp_path / "x")


def test_unknown_dtype_is_named(lora_checkpoint, tiny_base, tmp_path):
    with pytest.raises(AdapterError, match="unknown dtype 'fp8'"):
        merge(tiny_base, lora_checkpoint, tmp_path / "m", dtype="fp8")
    assert not (tmp_path / "m").exists()
