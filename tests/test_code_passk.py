"""pass@k: the unbiased estimator against hand-computed values and against EvalPlus' own."""

from __future__ import annotations

import importlib.util
import math
import random

import pytest

from evalsuite.scoring.code.passk import estimate_pass_at_k, pass_at_k


def by_combinations(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(
    ("n", "c", "k", "value"),
    [
        (10, 1, 1, 0.1),
        (10, 0, 1, 0.0),
        (10, 10, 1, 1.0),
        (10, 1, 10, 1.0),  # any 10 of 10 include the correct one
        (10, 0, 10, 0.0),
        (50, 5, 1, 0.1),
        (4, 2, 2, 1 - 1 / 6),  # C(2,2)/C(4,2) = 1/6
        (5, 1, 2, 0.4),  # 1 - C(4,2)/C(5,2) = 1 - 6/10
    ],
)
def test_hand_computed(n: int, c: int, k: int, value: float) -> None:
    assert estimate_pass_at_k(n, c, k) == pytest.approx(value, abs=1e-12)


def test_matches_the_combinatorial_formula() -> None:
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 60)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert estimate_pass_at_k(n, c, k) == pytest.approx(by_combinations(n, c, k), abs=1e-9)


def test_mean_over_problems_and_missing_k() -> None:
    got = pass_at_k([(10, 3), (10, 0)], (1, 10))
    assert got["pass@1"] == pytest.approx(0.15)
    assert got["pass@10"] == pytest.approx(0.5)  # 1.0 for the first problem, 0 for the second
    # one problem with 5 < 10 samples: pass@10 is not reported at all (as EvalPlus, bigcode)
    got = pass_at_k([(10, 3), (5, 5)], (1, 10))
    assert got["pass@1"] == pytest.approx((0.3 + 1.0) / 2)
    assert got["pass@10"] is None
    assert pass_at_k([], (1,)) == {"pass@1": None}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        estimate_pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        estimate_pass_at_k(5, 1, 6)


@pytest.mark.skipif(importlib.util.find_spec("evalplus") is None, reason="evalplus not installed")
def test_agrees_with_evalplus() -> None:
    from evalplus.eval import estimate_pass_at_k as reference

    rng = random.Random(1)
    for k in (1, 10):
        counts = [(n, rng.randint(0, n)) for n in (rng.randint(k, 40) for _ in range(50))]
        ours = pass_at_k(counts, (k,))[f"pass@{k}"]
        theirs = reference([n for n, _ in counts], [c for _, c in counts], k).mean()
        assert ours == pytest.approx(float(theirs), abs=1e-12)
