"""``evalsuite adapter analyze``: spectra of updates, against independent routes.

Reference values come from numpy's SVD of the update formed explicitly in the test (small
shapes), or from spectra set by construction; the 8B-shaped test checks that the analysis
itself never allocates an out x in tensor for a low-rank kind.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from evalsuite.adapters import adapter_from_state, load, merge
from evalsuite.adapters.base import PEFT_PREFIX, Adapter
from evalsuite.adapters.rasa import shared_key
from evalsuite.adapters.safetensors_io import iter_tensors
from evalsuite.analysis.analyze import EXTRAS, analyze, analyze_run, is_run_dir
from evalsuite.analysis.updates import ROUTES, BaseWeights
from evalsuite.testing.shapes import LLAMA_8B_LAYERS, LLAMA_8B_MODULES

TOL = 1e-5


def _orthonormal(n: int, r: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, r)))
    return q


def _lora_with_spectrum(s: np.ndarray, out_f: int = 40, in_f: int = 24, alpha: float = 16):
    """A one-module LoRA whose update has exactly the singular values ``s``."""
    r = len(s)
    scale = alpha / r
    u, v = _orthonormal(out_f, r, 1), _orthonormal(in_f, r, 2)
    b = torch.tensor(u * s / scale, dtype=torch.float32)
    a = torch.tensor(v.T, dtype=torch.float32)
    key = f"{PEFT_PREFIX}model.layers.0.self_attn.q_proj"
    tensors = {f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b}
    return adapter_from_state({"peft_type": "LORA", "r": r, "lora_alpha": alpha}, tensors)


def _entropy_rank(s: np.ndarray) -> float:
    p = s[s > 0] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def test_known_spectrum_singular_values_and_ranks():
    s = np.array([3.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.0, 0.0])
    report = analyze(_lora_with_spectrum(s), top=None)
    (m,) = report["modules"]
    assert np.allclose(m["singular_values"], s, atol=TOL)
    assert m["frobenius"] == pytest.approx(math.sqrt((s**2).sum()), abs=TOL)
    assert m["spectral_entropy_rank"] == pytest.approx(_entropy_rank(s), abs=TOL)
    # energies 9, 4, 1, .25, ...: 9/14.3225 = 0.63, 13/14.3225 = 0.908 -> two values hold 90%
    assert m["energy_rank_90"] == 2
    assert m["numerical_rank"] == 6
    assert m["type"] == "self_attn.q_proj" and m["layer"] == 0 and m["shape"] == [40, 24]


def test_flat_spectrum_has_full_entropy_rank():
    report = analyze(_lora_with_spectrum(np.full(8, 0.7)), top=None)
    (m,) = report["modules"]
    assert m["spectral_entropy_rank"] == pytest.approx(8.0, abs=TOL)
    assert m["energy_rank_90"] == 8  # 7 of 8 equal values hold 87.5%
    assert m["numerical_rank"] == 8


def test_top_limits_listed_values_not_the_summaries():
    s = np.array([3.0, 2.0, 1.0, 0.5])
    full = analyze(_lora_with_spectrum(s), top=None)["modules"][0]
    short = analyze(_lora_with_spectrum(s), top=2)["modules"][0]
    assert len(short["singular_values"]) == 2
    assert short["spectral_entropy_rank"] == pytest.approx(full["spectral_entropy_rank"])


def _numpy_reference(dense: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(dense.double().numpy(), compute_uv=False)


def _check_against_dense(report: dict, dense_of) -> None:
    assert report["modules"], "no module analysed"
    for m in report["modules"]:
        ref = _numpy_reference(dense_of(m["module"], tuple(m["shape"])))
        got = np.array(m["singular_values"])
        assert np.allclose(got, ref[: len(got)], atol=TOL), m["module"]
        assert np.allclose(ref[len(got) :], 0.0, atol=TOL), m["module"]
        assert m["frobenius"] == pytest.approx(np.sqrt((ref**2).sum()), abs=TOL)


@pytest.mark.parametrize("kind", ["lora", "rslora", "adalora", "vera"])
def test_peft_low_rank_kinds_match_numpy_svd(kind, peft_checkpoint, tiny_base):
    ckpt = load(peft_checkpoint(kind))
    report = analyze(ckpt, base=tiny_base, top=None)
    assert report["kind"] == kind and report["from_factors"] is True
    _check_against_dense(report, ckpt.delta)


def test_rasa_matches_numpy_svd_and_reports_d(rasa_checkpoint):
    ckpt = load(rasa_checkpoint)
    report = analyze(ckpt, top=None)
    _check_against_dense(report, ckpt.delta)
    r, k = ckpt.config["r"], ckpt.config["rasa_k"]
    stored = dict(iter_tensors(rasa_checkpoint / "adapter_model.safetensors"))
    for m in report["modules"]:
        d = stored[f"{PEFT_PREFIX}{m['module']}.rasa_mixing.weight"].double()
        assert m["rasa_d"]["own"] == d[: r - k].tolist()
        assert m["rasa_d"]["shared"] == d[r - k :].tolist()
        share = float(d[r - k :].square().sum() / d.square().sum())
        assert m["rasa_d"]["shared_fraction"] == pytest.approx(share, abs=1e-12)
    by_type = report["by_type"]["mlp.up_proj"]
    ups = [m for m in report["modules"] if m["type"] == "mlp.up_proj"]
    assert by_type["layers"] == len(ups) == ckpt.num_layers
    assert by_type["mean_shared_fraction"] == pytest.approx(
        np.mean([m["rasa_d"]["shared_fraction"] for m in ups])
    )


def test_modules_ordered_by_type_then_layer(rasa_checkpoint):
    report = analyze(rasa_checkpoint)
    keys = [(m["type"], m["layer"]) for m in report["modules"]]
    assert keys == sorted(keys)


def test_dora_reports_merged_minus_base(peft_checkpoint, tiny_base):
    ckpt = load(peft_checkpoint("dora"))
    base = BaseWeights(tiny_base)
    report = analyze(ckpt, base=tiny_base, top=None)
    assert report["from_factors"] is False

    def dense(module, shape):
        w = base.read(module)
        return ckpt.merged_weight(module, w) - w

    _check_against_dense(report, dense)


def test_mora_reports_its_dense_update(mora_checkpoint, tiny_base):
    ckpt = load(mora_checkpoint)
    report = analyze(ckpt, base=tiny_base, top=None)
    _check_against_dense(report, ckpt.delta)
    assert max(m["numerical_rank"] for m in report["modules"]) > ckpt.config["r"]


def test_full_fine_tune_against_its_base(lora_checkpoint, tiny_base, tmp_path):
    full_dir = merge(tiny_base, lora_checkpoint, tmp_path / "full", dtype="float32")
    lora = load(lora_checkpoint)
    report = analyze(full_dir, base=tiny_base, top=None)
    assert report["kind"] == "full"
    assert {m["module"] for m in report["modules"]} == set(lora.modules)  # other weights equal
    base = BaseWeights(tiny_base)

    def dense(module, shape):  # what was stored: the base's weight merged and cast back
        return BaseWeights(full_dir).read(module) - base.read(module)

    _check_against_dense(report, dense)


@pytest.mark.parametrize("kind", ["vera", "dora"])
def test_kinds_that_need_the_base_refuse_without_it(kind, peft_checkpoint):
    with pytest.raises(Exception, match="--base"):
        analyze(peft_checkpoint(kind))


def _kinds(cls: type) -> set[str]:
    return {sub.kind for sub in cls.__subclasses__()} | {
        k for sub in cls.__subclasses__() for k in _kinds(sub)
    }


def test_every_kind_has_a_route():
    kinds = _kinds(Adapter) | {"full"}
    assert set(ROUTES) == kinds
    assert set(EXTRAS) <= kinds


def _largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation torch makes while ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.self_cpu_memory_usage for e in prof.events())


def _lora_8b(r: int, g: torch.Generator):
    tensors = {}
    for layer in range(LLAMA_8B_LAYERS):
        for mtype, (out_f, in_f) in LLAMA_8B_MODULES.items():
            key = f"{PEFT_PREFIX}model.layers.{layer}.{mtype}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(r, in_f, generator=g) * 0.01
            tensors[f"{key}.lora_B.weight"] = torch.randn(out_f, r, generator=g) * 0.01
    return {"peft_type": "LORA", "r": r, "lora_alpha": 32}, tensors, r


def _rasa_8b(r: int, g: torch.Generator, k: int = 2):
    tensors = {}
    shared = LLAMA_8B_LAYERS * k
    for mtype, (out_f, in_f) in LLAMA_8B_MODULES.items():
        tensors[shared_key("A", mtype)] = torch.randn(shared, in_f, generator=g) * 0.01
        tensors[shared_key("B", mtype)] = torch.randn(out_f, shared, generator=g) * 0.01
        for layer in range(LLAMA_8B_LAYERS):
            key = f"{PEFT_PREFIX}model.layers.{layer}.{mtype}"
            tensors[f"{key}.rasa_A.weight"] = torch.randn(r - k, in_f, generator=g) * 0.01
            tensors[f"{key}.rasa_B.weight"] = torch.randn(out_f, r - k, generator=g) * 0.01
            tensors[f"{key}.rasa_mixing.weight"] = torch.rand(r - k + shared, generator=g) + 0.5
    return (
        {"peft_type": "RASA", "r": r, "rasa_k": k, "rasa_alpha": 32},
        tensors,
        r - k + LLAMA_8B_LAYERS * k,
    )


@pytest.mark.parametrize("build", [_lora_8b, _rasa_8b], ids=["lora", "rasa"])
def test_8b_shaped_low_rank_never_forms_a_dense_update(build):
    config, tensors, rank = build(16, torch.Generator().manual_seed(0))
    assert sum(t.numel() for t in tensors.values()) * 4 > 160e6  # real factors, ~168 MB
    adapter = adapter_from_state(config, tensors)
    smallest_update = 1024 * 4096 * 4  # k_proj's out x in in fp32: 16 MiB
    module = "model.layers.0.self_attn.k_proj"
    # the probe sees a dense update when one is made
    assert _largest_allocation(lambda: adapter.delta(module)) >= smallest_update
    reports = []
    largest = _largest_allocation(lambda: reports.append(analyze(adapter)))
    assert largest < smallest_update, f"an allocation of {largest} bytes"
    (report,) = reports
    assert len(report["modules"]) == 224
    assert all(m["numerical_rank"] == rank for m in report["modules"])


def test_cli_json_and_refusal(rasa_checkpoint, mora_checkpoint):
    cmd = [sys.executable, "-m", "evalsuite.cli", "adapter", "analyze"]
    out = subprocess.run([*cmd, str(rasa_checkpoint), "--json", "--top", "0"], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(analyze(rasa_checkpoint, top=None)))
    table = subprocess.run([*cmd, str(rasa_checkpoint)], capture_output=True, text=True)
    assert table.returncode == 0 and "mlp.up_proj" in table.stdout
    refused = subprocess.run([*cmd, str(mora_checkpoint)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--base" in refused.stderr


def test_a_run_directory_gives_every_epoch_in_order(tiny_base, tmp_path):
    from evalsuite.testing.checkpoints import TARGETS, trainer_dir, write_lora

    run = tmp_path / "run"
    made = []
    for step, epoch, std in ((20, 2.0, 0.1), (10, 1.0, 0.01)):  # written out of order
        made.append(write_lora(trainer_dir(run, step, epoch), tiny_base, TARGETS, std=std))
    report = analyze_run(run)
    assert [c["epoch"] for c in report["checkpoints"]] == [1.0, 2.0]
    assert report["checkpoints"][0] == analyze(run / "checkpoint-10")
    norms = [c["by_type"]["mlp.up_proj"]["frobenius"] for c in report["checkpoints"]]
    assert norms[1] > 10 * norms[0]  # factors 10x larger: the update ~100x
    out = subprocess.run(
        [sys.executable, "-m", "evalsuite.cli", "adapter", "analyze", str(run), "--json"],
        capture_output=True,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(report))
    assert is_run_dir(run) and not is_run_dir(made[0])
