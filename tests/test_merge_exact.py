"""Merged weights must reproduce each method's own forward pass (fp32, within 1e-5).

References are independent of our merge: PEFT's unmerged model and its merge_and_unload for
every PEFT kind; for RaSA and MoRA a forward pass written here from the definitions.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import PEFT_KINDS, load_model, logits_of

from evalsuite.adapters import load, merge

TOL = 1e-5


def _assert_close(ours, ref, what):
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, f"{what}: max |logit diff| = {diff:.3g} > {TOL}"


def _changes_output(merged_logits, base_logits):
    assert (merged_logits - base_logits).abs().max().item() > 1e-2, "adapter changed nothing"


@pytest.mark.parametrize("kind", PEFT_KINDS)
def test_peft_kinds_merge_like_peft(kind, peft_checkpoint, tiny_base, token_batch, tmp_path):
    from peft import PeftModel

    ckpt = peft_checkpoint(kind)
    adapter = load(ckpt)
    assert adapter.kind == kind
    out = merge(tiny_base, ckpt, tmp_path / "merged")
    ours = logits_of(load_model(out), token_batch)

    peft_model = PeftModel.from_pretrained(load_model(tiny_base), ckpt).eval()
    _assert_close(ours, logits_of(peft_model, token_batch), f"{kind} vs PEFT unmerged")
    merged_by_peft = peft_model.merge_and_unload()
    _assert_close(ours, logits_of(merged_by_peft, token_batch), f"{kind} vs PEFT merge_and_unload")
    _changes_output(ours, logits_of(load_model(tiny_base), token_batch))


def _rasa_hooks(model, ckpt):
    """RaSA forward from the paper: y = Wx + B_i D_own A_i x + B_S D_shared A_S x."""
    from safetensors.torch import load_file

    cfg = json.loads((ckpt / "adapter_config.json").read_text())
    r, k = cfg["r"], cfg["rasa_k"]
    sd = {n: t.float() for n, t in load_file(ckpt / "adapter_model.safetensors").items()}
    handles = []
    for name, module in model.named_modules():
        key = f"base_model.model.{name}"
        if f"{key}.rasa_A.weight" not in sd:
            continue
        mtype = name.split("layers.", 1)[1].split(".", 1)[1].replace(".", "__")
        a_i, b_i = sd[f"{key}.rasa_A.weight"], sd[f"{key}.rasa_B.weight"]
        d = sd[f"{key}.rasa_mixing.weight"]
        a_s = sd[f"base_model.rasa_shared_A.{mtype}.weight"]
        b_s = sd[f"base_model.rasa_shared_B.{mtype}.weight"]

        def hook(mod, inputs, output, a_i=a_i, b_i=b_i, d=d, a_s=a_s, b_s=b_s):
            x = inputs[0]
            own = F.linear(F.linear(x, a_i) * d[: r - k], b_i)
            shared = F.linear(F.linear(x, a_s) * d[r - k :], b_s)
            return output + own + shared

        handles.append(module.register_forward_hook(hook))
    assert len(handles) == 7 * model.config.num_hidden_layers
    return handles


def test_rasa_merge_matches_reference_forward(rasa_checkpoint, tiny_base, token_batch, tmp_path):
    out = merge(tiny_base, rasa_checkpoint, tmp_path / "merged")
    ours = logits_of(load_model(out), token_batch)
    reference = load_model(tiny_base)
    base_logits = logits_of(reference, token_batch)
    _rasa_hooks(reference, rasa_checkpoint)
    _assert_close(ours, logits_of(reference, token_batch), "RaSA merged vs reference forward")
    _changes_output(ours, base_logits)


def _mora6_apply(x, m, in_f, out_f):
    """MoRA type 6 forward as in the RaSA repo's PEFT fork (_apply_mora), written anew."""
    r = m.shape[0]
    sum_inter = in_f // r
    rb1 = in_f // r if in_f % r == 0 else in_f // r + 1
    if in_f % r != 0:
        pad = r - in_f % r
        x = torch.cat([x, x[..., :pad]], dim=-1)
        sum_inter += 1
    in_x = x.view(*x.shape[:-1], sum_inter, r)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r))
    freqs = torch.outer(torch.arange(rb1).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().unsqueeze(0), emb.sin().unsqueeze(0)
    rh = torch.cat((-in_x[..., r // 2 :], in_x[..., : r // 2]), dim=-1)
    in_x = in_x * cos + rh * sin
    out_x = F.linear(in_x, m)
    out_x = out_x.reshape(*x.shape[:-1], -1)[..., :out_f]
    if out_x.shape[-1] < out_f:
        times = math.ceil(out_f / out_x.shape[-1])
        out_x = torch.cat([out_x] * times, dim=-1)[..., :out_f]
    return out_x


def test_mora_type6_merge_matches_reference_forward(
    mora_checkpoint, tiny_base, token_batch, tmp_path
):
    from safetensors.torch import load_file

    adapter = load(mora_checkpoint)
    assert adapter.kind == "mora"
    out = merge(tiny_base, mora_checkpoint, tmp_path / "merged")
    ours = logits_of(load_model(out), token_batch)
    reference = load_model(tiny_base)
    base_logits = logits_of(reference, token_batch)
    sd = load_file(mora_checkpoint / "adapter_model.safetensors")
    hooked = 0
    for name, module in reference.named_modules():
        key = f"base_model.model.{name}.lora_A.weight"
        if key in sd:
            m = sd[key].float()

            def hook(mod, inputs, output, m=m):
                return output + _mora6_apply(inputs[0], m, mod.in_features, mod.out_features)

            module.register_forward_hook(hook)
            hooked += 1
    assert hooked == 21
    _assert_close(ours, logits_of(reference, token_batch), "MoRA merged vs type-6 forward")
    _changes_output(ours, base_logits)


@pytest.mark.parametrize(
    ("in_f", "out_f", "n"), [(64, 64, 8), (40, 96, 16), (100, 30, 12), (12, 50, 16)]
)
def test_mora_type6_delta_equals_forward_on_identity(in_f, out_f, n):
    """Shapes with padding, tiling and truncation, including in_f < n (the reference's
    get_delta_weight crashes there; the forward pass still defines the update)."""
    from evalsuite.adapters.mora import type6_delta

    m = torch.randn(n, n)
    expected = _mora6_apply(torch.eye(in_f), m, in_f, out_f).T  # column j = update of e_j
    got = type6_delta(m, in_f, out_f)
    assert got.shape == (out_f, in_f)
    assert torch.allclose(got, expected, atol=1e-5)
