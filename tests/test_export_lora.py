"""``export_lora``: a plain PEFT LoRA directory that PEFT loads to the same logits."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_model, logits_of

from evalsuite.adapters import AdapterError, export_lora, load, merge
from evalsuite.adapters.export import resolve_pad_to

TOL = 1e-5


def _peft_logits(base, lora_dir, ids):
    from peft import PeftModel

    return logits_of(PeftModel.from_pretrained(load_model(base), lora_dir).eval(), ids)


def test_rasa_export_is_exact_rank_r_minus_k_plus_lk(
    rasa_checkpoint, tiny_base, token_batch, tmp_path
):
    out = export_lora(rasa_checkpoint, tmp_path / "lora")
    cfg = json.loads((out / "adapter_config.json").read_text())
    # r=8, k=2, L=3 layers: 8 - 2 + 3*2 = 12, scale 1
    assert cfg["r"] == 12 and cfg["lora_alpha"] == 12 and cfg["peft_type"] == "LORA"
    merged = merge(tiny_base, rasa_checkpoint, tmp_path / "merged")
    expected = logits_of(load_model(merged), token_batch)
    got = _peft_logits(tiny_base, out, token_batch)
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("pad_to", [16, "auto"])
def test_padding_keeps_the_export_exact(rasa_checkpoint, tiny_base, token_batch, tmp_path, pad_to):
    exact = export_lora(rasa_checkpoint, tmp_path / "exact")
    padded = export_lora(rasa_checkpoint, tmp_path / "padded", pad_to=pad_to)
    cfg = json.loads((padded / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and cfg["lora_alpha"] == 16
    info = json.loads((padded / "export_info.json").read_text())
    assert info["exact_rank"] == 12 and info["rank"] == 16
    a = _peft_logits(tiny_base, exact, token_batch)
    b = _peft_logits(tiny_base, padded, token_batch)
    assert (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize("kind", ["lora", "rslora"])
def test_lora_and_rslora_export_match_peft(kind, peft_checkpoint, tiny_base, token_batch, tmp_path):
    ckpt = peft_checkpoint(kind)
    out = export_lora(ckpt, tmp_path / "lora")
    assert json.loads((out / "adapter_config.json").read_text())["use_rslora"] is False
    original = _peft_logits(tiny_base, ckpt, token_batch)
    exported = _peft_logits(tiny_base, out, token_batch)
    assert (original - exported).abs().max().item() <= TOL


def test_rank_pattern_lora_exports_padded_to_uniform_rank(tiny_base, token_batch, tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        rank_pattern={"down_proj": 8},
        alpha_pattern={"v_proj": 2},
    )
    model = get_peft_model(load_model(tiny_base), config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.03)
    model.save_pretrained(tmp_path / "src")
    adapter = load(tmp_path / "src")
    assert adapter.effective_rank_by_type() == {
        "mlp.down_proj": 8,
        "self_attn.q_proj": 4,
        "self_attn.v_proj": 4,
    }
    out = export_lora(tmp_path / "src", tmp_path / "lora")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    original = _peft_logits(tiny_base, tmp_path / "src", token_batch)
    assert (original - _peft_logits(tiny_base, out, token_batch)).abs().max().item() <= TOL


@pytest.mark.parametrize("kind", ["dora", "vera", "adalora"])
def test_kinds_without_an_exact_lora_refuse_to_export(kind, peft_checkpoint, tmp_path):
    with pytest.raises(AdapterError, match="no exact plain-LoRA form"):
        export_lora(peft_checkpoint(kind), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pad_to_rules():
    assert resolve_pad_to(12, None) == 12
    assert resolve_pad_to(12, "auto") == 16
    assert resolve_pad_to(39, "auto") == 64  # RaSA r=8, k=1 on a 32-layer model
    assert resolve_pad_to(156, "auto") == 256
    with pytest.raises(AdapterError, match="below the adapter's exact rank 78"):
        resolve_pad_to(78, 64)
    with pytest.raises(AdapterError, match="largest LoRA rank"):
        resolve_pad_to(600, "auto")
