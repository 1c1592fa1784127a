"""Comparing a decoded output with its answer costs what the two sides hold, not their product.

EvalPlus and bigcode compare with ``out == exp`` and ``np.allclose(out, exp)``, and numpy
broadcasts: an output shaped (n, 1) against an answer of n numbers becomes an n x n array.
A 1 MB payload (numpy int8 zeros, or a list of one-element lists of the answer's length,
which passes EvalPlus' length check) made one comparison allocate 3.4 GB. Such comparisons
now count as unequal before numpy builds anything; every honest comparison is unchanged.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from evalsuite.scoring.code.evalplus import MAX_BROADCAST, evalplus_equal
from evalsuite.scoring.code.paper import hf_assertion

N = 5000  # N x N = 25M elements, past MAX_BROADCAST
CHECKS = [evalplus_equal, hf_assertion]


@pytest.fixture
def broadcasts(monkeypatch) -> list[int]:
    """Every elementwise comparison numpy is asked for, by the size it would broadcast to."""
    sizes: list[int] = []
    real_allclose = np.allclose

    def allclose(a, b, *args, **kwargs):
        sizes.append(int(np.prod(np.broadcast_shapes(np.shape(a), np.shape(b)))))
        return real_allclose(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "allclose", allclose)
    return sizes


@pytest.mark.parametrize("check", CHECKS)
def test_a_list_of_one_element_lists_is_not_broadcast(check, broadcasts) -> None:
    answer = [float(x) for x in range(N)]
    hostile = [[float(x)] for x in range(N)]  # same length and type as the answer
    assert check(hostile, answer, 1e-6) is False
    assert all(size <= MAX_BROADCAST for size in broadcasts), broadcasts


@pytest.mark.parametrize("check", CHECKS)
def test_a_numpy_column_is_not_broadcast_by_equality(check) -> None:
    """numpy's == broadcasts too: what the comparison allocates stays near the inputs' size
    (tracemalloc counts numpy's buffers; an N x N bool array would be 25 MB)."""
    answer = list(range(N))
    hostile = np.zeros((N, 1), dtype=np.int8)
    tracemalloc.start()
    try:
        verdicts = [check(hostile, answer, 0), check(hostile, answer, 1e-6)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdicts == [False, False]
    assert peak < 5 * 2**20, peak


@pytest.mark.parametrize("check", CHECKS)
def test_honest_comparisons_are_unchanged(check) -> None:
    """Hand-checked verdicts: the same values, values within atol, a numpy scalar, a small
    broadcast (as the reference tools allow), and a plain mismatch."""
    answer = [0.1 * x for x in range(N)]
    assert check(list(answer), answer, 0) is True
    assert check([a + 1e-9 for a in answer], answer, 1e-6) is True
    assert check(np.float64(2.5), 2.5, 0) is True  # a numpy scalar: no broadcast at all
    assert check([[1.0], [1.0]], [1.0, 1.0], 1e-6) is True  # 2 x 2: numpy's verdict stands
    assert check([a + 1.0 for a in answer], answer, 1e-6) is False
