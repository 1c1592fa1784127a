"""The gate's paired bootstrap and decision rule, against a plain-Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite.gate import stats
from evalsuite.gate.stats import PairedResult, is_regression, paired_bootstrap


def _reference_bootstrap(cand, base, alpha, n_boot, seed):
    """One resample at a time in plain Python; numpy only for the random indices (the same
    generator and stream, so the numbers must agree to rounding)."""
    rng = np.random.default_rng(seed)
    n = len(cand)
    diffs = [c - b for c, b in zip(cand, base, strict=True)]
    means = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        means.append(sum(diffs[int(i)] for i in idx) / n)
    means.sort()

    def quantile(q):  # numpy's default 'linear' method, by hand
        h = (n_boot - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, n_boot - 1)
        return means[lo] + (h - lo) * (means[hi] - means[lo])

    p = sum(m >= 0 for m in means) / n_boot
    return sum(diffs) / n, quantile(alpha), quantile(1 - alpha), p


def test_vectorised_bootstrap_equals_a_plain_loop():
    rng = np.random.default_rng(7)
    base = rng.random(37).round(2)
    cand = (base - rng.random(37) * 0.3).clip(0, 1)
    got = paired_bootstrap(cand, base, alpha=0.1, n_boot=700, seed=11)
    diff, low, high, p = _reference_bootstrap(list(cand), list(base), 0.1, 700, 11)
    assert got.diff == pytest.approx(diff, abs=1e-12)
    assert got.ci_low == pytest.approx(low, abs=1e-12)
    assert got.ci_high == pytest.approx(high, abs=1e-12)
    assert got.p_value == pytest.approx(p, abs=1e-12)
    assert got.candidate == pytest.approx(sum(cand) / 37)
    assert got.baseline == pytest.approx(sum(base) / 37)
    assert got.ci_low < got.diff < got.ci_high


def test_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(1)
    base, cand = rng.random(50), rng.random(50)
    whole = paired_bootstrap(cand, base, n_boot=999, seed=3)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 50 * 7)  # 7 resamples per block
    chunked = paired_bootstrap(cand, base, n_boot=999, seed=3)
    assert chunked == whole
    assert paired_bootstrap(cand, base, n_boot=999, seed=4) != whole  # the seed matters


def _result(diff: float, ci_high: float) -> PairedResult:
    return PairedResult(100, 0.5, 0.5 + diff, diff, diff - 0.1, ci_high, 0.0, 0.05, 10, 0)


@pytest.mark.parametrize(
    ("diff", "ci_high", "max_drop", "expected"),
    [
        (-0.05, -0.01, 1.0, True),  # 5 points down, significant
        (-0.05, 0.001, 1.0, False),  # 5 points down, not significant
        (-0.005, -0.001, 1.0, False),  # significant but within the tolerance
        (-0.011, -0.001, 1.0, True),  # just beyond the tolerance
        (-0.001, -0.0001, 0.0, True),  # max_drop 0: any significant drop fails
        (0.0, 0.0, 0.0, False),  # upper bound exactly 0 is not below 0
        (0.02, 0.05, 1.0, False),  # improvement
    ],
)
def test_decision_rule(diff, ci_high, max_drop, expected):
    assert is_regression(_result(diff, ci_high), max_drop) is expected


def test_tiny_sample_large_drop_is_not_significant():
    base = np.array([1.0] * 10)
    cand = base.copy()
    cand[0] = 0.0  # 10 points down on one problem of ten
    r = paired_bootstrap(cand, base, n_boot=2000, seed=0)
    assert r.diff == pytest.approx(-0.1)
    assert r.ci_high == 0.0  # a third of the resamples miss that problem
    assert not is_regression(r, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60),
    max_drop=st.floats(0, 20),
    alpha=st.floats(0.001, 0.4),
    seed=st.integers(0, 2**32 - 1),
)
def test_identical_inputs_never_fail(values, max_drop, alpha, seed):
    a = np.array(values)
    r = paired_bootstrap(a, a.copy(), alpha=alpha, n_boot=200, seed=seed)
    assert r.diff == 0.0 and r.ci_high == 0.0 and r.p_value == 1.0
    assert not is_regression(r, max_drop)


@settings(max_examples=25, deadline=None)
@given(
    p=st.floats(0.3, 0.9),
    max_drop=st.floats(0, 5),
    extra=st.floats(2, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_shift_beyond_max_drop_with_large_n_always_fails(p, max_drop, extra, seed):
    n = 2000
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < p).astype(float)
    cand = base.copy()
    solved = np.flatnonzero(base == 1.0)
    lost = math.ceil((max_drop + extra) / 100 * n)  # drop = max_drop + extra points
    cand[rng.choice(solved, size=lost, replace=False)] = 0.0
    r = paired_bootstrap(cand, base, n_boot=500, seed=seed)
    assert -100 * r.diff >= max_drop + extra - 1e-9
    assert is_regression(r, max_drop)


@settings(max_examples=25, deadline=None)
@given(swaps=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
def test_swapped_verdicts_with_no_net_change_pass(swaps, seed):
    """Noise only: as many problems newly solved as newly failed."""
    rng = np.random.default_rng(seed)
    base = (rng.random(1000) < 0.5).astype(float)
    base[:swaps], base[swaps : 2 * swaps] = 1.0, 0.0
    cand = base.copy()
    cand[:swaps], cand[swaps : 2 * swaps] = 0.0, 1.0
    r = paired_bootstrap(cand, base, n_boot=300, seed=seed)
    assert r.diff == pytest.approx(0.0, abs=1e-12)
    assert not is_regression(r, 0.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="no documents"):
        paired_bootstrap(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="alpha"):
        paired_bootstrap(np.zeros(3), np.zeros(3), alpha=0.7)
