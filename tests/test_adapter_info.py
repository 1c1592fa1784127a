"""What ``load`` reports: kind, ranks, scaling, layers, epoch/step and trainable parameters."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from evalsuite.adapters import adapter_from_state, load
from evalsuite.adapters.base import PEFT_PREFIX
from evalsuite.adapters.rasa import shared_key
from evalsuite.testing.shapes import LLAMA_8B_LAYERS, LLAMA_8B_MODULES


def _meta(*shape):
    return torch.empty(*shape, device="meta")


def _lora_8b(r):
    tensors = {}
    for layer in range(LLAMA_8B_LAYERS):
        for mtype, (out_f, in_f) in LLAMA_8B_MODULES.items():
            key = f"{PEFT_PREFIX}model.layers.{layer}.{mtype}"
            tensors[f"{key}.lora_A.weight"] = _meta(r, in_f)
            tensors[f"{key}.lora_B.weight"] = _meta(out_f, r)
    return adapter_from_state({"peft_type": "LORA", "r": r, "lora_alpha": 32}, tensors)


def _rasa_8b(r, k):
    tensors = {}
    for mtype, (out_f, in_f) in LLAMA_8B_MODULES.items():
        tensors[shared_key("A", mtype)] = _meta(LLAMA_8B_LAYERS * k, in_f)
        tensors[shared_key("B", mtype)] = _meta(out_f, LLAMA_8B_LAYERS * k)
        for layer in range(LLAMA_8B_LAYERS):
            key = f"{PEFT_PREFIX}model.layers.{layer}.{mtype}"
            tensors[f"{key}.rasa_A.weight"] = _meta(r - k, in_f)
            tensors[f"{key}.rasa_B.weight"] = _meta(out_f, r - k)
            tensors[f"{key}.rasa_mixing.weight"] = _meta(r - k + LLAMA_8B_LAYERS * k)
    config = {"peft_type": "RASA", "r": r, "rasa_k": k, "rasa_alpha": 32}
    return adapter_from_state(config, tensors)


@pytest.mark.parametrize(("r", "expected"), [(8, 20_971_520), (16, 41_943_040), (32, 83_886_080)])
def test_lora_trainable_params_llama31_8b(r, expected):
    adapter = _lora_8b(r)
    assert adapter.trainable_params == expected
    assert adapter.num_layers == 32 and adapter.effective_rank == r


def test_rasa_trainable_params_llama31_8b():
    adapter = _rasa_8b(16, 2)
    # LoRA(16) + 7 * L * (r - k + L*k) D entries = 41,943,040 + 17,472 (paper: 42.0M)
    assert adapter.trainable_params == 41_960_512
    assert adapter.effective_rank == 16 - 2 + 32 * 2 == 78
    assert round(adapter.trainable_params / 1e6, 1) == 42.0


@pytest.mark.parametrize(("r", "k", "r_eff"), [(8, 1, 39), (16, 2, 78), (32, 4, 156)])
def test_rasa_effective_ranks_of_the_paper(r, k, r_eff):
    assert _rasa_8b(r, k).effective_rank == r_eff


def test_peft_kinds_report_their_parameters(peft_checkpoint):
    lora = load(peft_checkpoint("lora"))
    assert (lora.kind, lora.r, lora.alpha, lora.scaling) == ("lora", 8, 16, 2.0)
    assert (lora.trainer.epoch, lora.trainer.step) == (2.0, 40)
    assert lora.num_layers == 3 and len(lora.modules) == 21
    assert lora.target_modules == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    rs = load(peft_checkpoint("rslora"))
    assert rs.kind == "rslora" and rs.scaling == pytest.approx(16 / math.sqrt(8))
    # tiny Llama: q,o 64x64; k,v 64->32; gate,up 64->128; down 128->64
    per_layer_in_out = 128 + 96 + 96 + 128 + 192 + 192 + 192
    assert lora.trainable_params == 8 * per_layer_in_out * 3
    dora = load(peft_checkpoint("dora"))
    magnitudes = (64 + 32 + 32 + 64 + 128 + 128 + 64) * 3
    assert dora.trainable_params == lora.trainable_params + magnitudes
    vera = load(peft_checkpoint("vera"))
    assert vera.trainable_params == (16 * 7 + 64 + 32 + 32 + 64 + 128 + 128 + 64) * 3
    ada = load(peft_checkpoint("adalora"))
    assert ada.kind == "adalora" and ada.effective_rank == 6
    assert ada.trainable_params == 6 * (per_layer_in_out + 7) * 3


def test_rasa_and_mora_info(rasa_checkpoint, mora_checkpoint):
    rasa = load(rasa_checkpoint).info()
    assert rasa["kind"] == "rasa" and (rasa["r"], rasa["k"], rasa["alpha"]) == (8, 2, 16)
    assert rasa["effective_rank"] == 8 - 2 + 3 * 2 and rasa["num_layers"] == 3
    assert (rasa["epoch"], rasa["step"]) == (3.0, 60)
    mora = load(mora_checkpoint).info()
    # n = int(sqrt((in+out)*r)+0.5), rounded down to even: q_proj 128 -> 32, down 192 -> 38
    assert mora["kind"] == "mora" and mora["effective_rank_by_type"]["self_attn.q_proj"] == 32
    assert mora["effective_rank_by_type"]["mlp.down_proj"] == 38


def test_cli_adapter_info_json(rasa_checkpoint):
    out = subprocess.run(
        [sys.executable, "-m", "evalsuite.cli", "adapter", "info", str(rasa_checkpoint), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    for key in (
        "kind",
        "r",
        "k",
        "alpha",
        "scaling",
        "num_layers",
        "target_modules",
        "trainable_params",
        "effective_rank",
        "epoch",
        "step",
    ):
        assert key in info
    assert info["trainable_params"] == load(rasa_checkpoint).trainable_params
