"""Paired bootstrap of a difference in means, and the gate's decision rule.

Two checkpoints scored on the same documents are compared document by document: the
per-document values are paired, so the variation between documents (some problems are hard
for every model) cancels out, and the interval is far narrower than two independent ones.

The bootstrap resamples documents with replacement, using the same indices for both sides,
and takes the mean difference of each resample. Resamples are drawn in chunks of rows of one
``(rows, n)`` integer matrix, so memory stays bounded for MATH-sized tasks (5000 documents x
10000 resamples would otherwise be 400 MB of indices) while the random stream is the same as
drawing the whole matrix at once: the result depends on the seed only, not on the chunking.

Decision rule (documented in README "Regression gate"): a check fails when BOTH

1. the observed drop ``baseline - candidate`` is larger than ``max_drop`` points, and
2. the upper one-sided ``(1 - alpha)`` bootstrap bound of ``candidate - baseline`` is below 0
   (the drop is significant at level ``alpha``, one-sided).

Why both and not "the upper bound is below ``-max_drop``": ``max_drop`` says how large a drop
matters, ``alpha`` guards against calling noise a drop. Requiring the whole interval below
``-max_drop`` would need enough documents to certify that the drop exceeds the tolerance,
which HumanEval's 164 problems rarely give, so real regressions would pass silently. With
both conditions a drop within the tolerance never fails and a large drop fails only when it
is unlikely to be noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_N_BOOT = 10_000
_CHUNK_ELEMENTS = 2_000_000  # indices per drawn block: 16 MB of int64


@dataclass(frozen=True)
class PairedResult:
    """Means and the bootstrap of ``candidate - baseline`` (fractions, not points)."""

    n: int
    baseline: float
    candidate: float
    diff: float
    ci_low: float  # lower one-sided (1 - alpha) bound
    ci_high: float  # upper one-sided (1 - alpha) bound
    p_value: float  # share of resampled differences >= 0: one-sided p for "candidate worse"
    alpha: float
    n_boot: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_diffs(diffs: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Mean of ``diffs`` over ``n_boot`` resamples of its entries (same stream as one draw
    of an ``(n_boot, n)`` index matrix from ``np.random.default_rng(seed)``)."""
    n = len(diffs)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = diffs[idx].mean(axis=1)
    return out


def paired_bootstrap(
    candidate: np.ndarray,
    baseline: np.ndarray,
    *,
    alpha: float = 0.05,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> PairedResult:
    """Paired percentile bootstrap of ``mean(candidate) - mean(baseline)``.

    ``candidate[i]`` and ``baseline[i]`` are the two checkpoints' values on document ``i``.
    """
    candidate = np.asarray(candidate, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if candidate.shape != baseline.shape or candidate.ndim != 1:
        raise ValueError(f"need two equal 1-d arrays, got {candidate.shape} and {baseline.shape}")
    if len(candidate) == 0:
        raise ValueError("no documents to compare")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    diffs = candidate - baseline
    boot = bootstrap_diffs(diffs, n_boot, seed)
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return PairedResult(
        n=len(diffs),
        baseline=float(baseline.mean()),
        candidate=float(candidate.mean()),
        diff=float(diffs.mean()),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(np.mean(boot >= 0.0)),
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
    )


def is_regression(result: PairedResult, max_drop_points: float) -> bool:
    """The gate's rule (module docstring): drop beyond ``max_drop`` AND significant."""
    drop_points = -result.diff * 100.0
    return drop_points > max_drop_points and result.ci_high < 0.0
