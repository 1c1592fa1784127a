"""Section 3.2 reconstruction: LoRA's Eckart-Young error and RaSA's coordinate descent.

References are independent: spectra set by construction and numpy's SVD; RaSA's reported
errors are recomputed here from its final factors, formed into explicit small matrices.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from evalsuite.adapters import load
from evalsuite.analysis.reconstruct import Layer, lora_error, rasa_descent, reconstruct

OUT, IN, L = 24, 18, 5


@pytest.fixture(autouse=True)
def _one_thread():
    """These matrices are tiny: one thread avoids OpenMP spin-waits on a shared machine
    (several times faster here), and the results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _known(seed: int, spectrum: np.ndarray) -> np.ndarray:
    """A matrix with exactly the singular values ``spectrum``."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((OUT, len(spectrum))))
    v, _ = np.linalg.qr(rng.standard_normal((IN, len(spectrum))))
    return (u * spectrum) @ v.T


def _layer(m: np.ndarray) -> Layer:
    u, s, vh = torch.linalg.svd(torch.tensor(m, dtype=torch.float64), full_matrices=False)
    return Layer(u, s, vh)


def _spectra() -> list[np.ndarray]:
    return [np.linspace(3.0, 0.2, 12) * (1 + 0.1 * i) for i in range(L)]


def test_lora_error_is_the_squared_tail():
    spectra = _spectra()
    layers = [_layer(_known(i, s)) for i, s in enumerate(spectra)]
    for r in (1, 4, 8, 12):
        expected = sum(float((s[r:] ** 2).sum()) for s in spectra)
        assert lora_error(layers, r) == pytest.approx(expected, rel=1e-10, abs=1e-10)


def _explicit_error(matrices: list[np.ndarray], descent) -> float:
    """sum_i ||M_i - (B~_i A~_i + B_S D_i A_S)||^2 with every matrix formed."""
    fit = descent.fit
    total = 0.0
    for i, m in enumerate(matrices):
        b, a = (t.numpy() for t in fit.own[i])
        shared = fit.bs.numpy() @ np.diag(fit.d[i].numpy()) @ fit.as_.numpy()
        total += float(((m - b @ a - shared) ** 2).sum())
    return total


@pytest.mark.parametrize("k", [1, 2, 4])
def test_rasa_descent_never_rises_and_ends_at_most_lora(k):
    matrices = [_known(10 + i, s) for i, s in enumerate(_spectra())]
    layers = [_layer(m) for m in matrices]
    r = 4
    e_lora = lora_error(layers, r)
    d = rasa_descent(layers, r, k, iterations=100)
    assert d.errors[0] == pytest.approx(e_lora, rel=1e-9)  # Theorem 3.1's start
    assert all(b <= a + 1e-9 * e_lora for a, b in zip(d.errors, d.errors[1:], strict=False))
    assert d.error <= e_lora * (1 + 1e-9)
    assert d.error < 0.99 * e_lora  # sharing across layers does help on these
    assert d.error == pytest.approx(_explicit_error(matrices, d), rel=1e-8)


def test_rasa_at_k0_is_lora():
    matrices = [_known(20 + i, s) for i, s in enumerate(_spectra())]
    layers = [_layer(m) for m in matrices]
    d = rasa_descent(layers, 4, 0)
    assert d.error == pytest.approx(lora_error(layers, 4), rel=1e-10)
    assert d.error == pytest.approx(_explicit_error(matrices, d), rel=1e-9)


def test_rasa_recovers_updates_built_as_rasa():
    """Updates that are exactly a RaSA (own rank r-k plus a pool of L*k shared ranks) have a
    rank above r, so LoRA cannot reach them; the descent gets far below LoRA's error."""
    rng = np.random.default_rng(5)
    r, k = 4, 1
    bs, as_ = rng.standard_normal((OUT, L * k)), rng.standard_normal((L * k, IN))
    matrices = [
        rng.standard_normal((OUT, r - k)) @ rng.standard_normal((r - k, IN))
        + bs @ np.diag(rng.uniform(0.5, 1.5, L * k)) @ as_
        for _ in range(L)
    ]
    layers = [_layer(m) for m in matrices]
    e_lora = lora_error(layers, r)
    d = rasa_descent(layers, r, k, iterations=500, tol=0.0)
    assert e_lora > 0.01 * sum(x.energy for x in layers)
    assert d.error < 0.1 * e_lora


def test_checkpoint_route_matches_numpy(mora_checkpoint, tiny_base):
    ckpt = load(mora_checkpoint)
    report = reconstruct(ckpt, 8, [0, 1, 2], base=tiny_base, types=["mlp.up_proj"])
    (mtype,) = report["types"]
    t = report["types"][mtype]
    dense = [
        ckpt.delta(m, tuple(ckpt_shape))
        for m, ckpt_shape in (
            (m, _shape(tiny_base, m)) for m in ckpt.modules if m.endswith("mlp.up_proj")
        )
    ]
    spectra = [np.linalg.svd(x.double().numpy(), compute_uv=False) for x in dense]
    assert t["layers"] == len(dense)
    assert t["energy"] == pytest.approx(sum((s**2).sum() for s in spectra), rel=1e-9)
    assert t["lora_error"] == pytest.approx(sum((s[8:] ** 2).sum() for s in spectra), rel=1e-9)
    by_k = {run["k"]: run for run in t["rasa"]}
    assert by_k[0]["error"] == pytest.approx(t["lora_error"], rel=1e-9)
    assert by_k[1]["error"] <= t["lora_error"] and by_k[2]["error"] <= t["lora_error"]
    assert by_k[1]["errors"][0] == pytest.approx(t["lora_error"], rel=1e-9)
    assert report["mean_relative"]["lora"] == pytest.approx(t["lora_relative"])


def _shape(base, module):
    from evalsuite.analysis.updates import BaseWeights

    return BaseWeights(base).shape(module)


def test_max_rank_reports_the_cut_energy(mora_checkpoint, tiny_base):
    report = reconstruct(mora_checkpoint, 4, [0], base=tiny_base, types=["self_attn.k_proj"])
    cut = reconstruct(
        mora_checkpoint, 4, [0], base=tiny_base, types=["self_attn.k_proj"], max_rank=6
    )
    full, short = report["types"]["self_attn.k_proj"], cut["types"]["self_attn.k_proj"]
    assert full["truncated_energy"] == 0.0
    assert short["energy"] + short["truncated_energy"] == pytest.approx(full["energy"])
    assert short["lora_error"] + short["truncated_energy"] == pytest.approx(full["lora_error"])


def _flat(value, prefix: str = "") -> dict:
    """Nested JSON -> {path: leaf}."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    out: dict = {}
    for key, sub in items:
        out.update(_flat(sub, f"{prefix}/{key}"))
    return out


def test_cli_json(mora_checkpoint, tiny_base):
    cmd = [sys.executable, "-m", "evalsuite.cli", "adapter", "reconstruct", str(mora_checkpoint)]
    args = ["--base", str(tiny_base), "--r", "4", "--k", "0,1", "--type", "mlp.down_proj"]
    out = subprocess.run([*cmd, *args, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    direct = reconstruct(mora_checkpoint, 4, [0, 1], base=tiny_base, types=["mlp.down_proj"])
    assert _flat(report).keys() == _flat(direct).keys()
    for key, value in _flat(direct).items():  # thread counts differ: last-digit rounding
        if isinstance(value, float):
            assert _flat(report)[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert _flat(report)[key] == value, key
    bad = subprocess.run([*cmd, *args[:4], "--k", "5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "0..r=4" in bad.stderr
