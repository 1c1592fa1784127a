"""HumanEval/32 (find_zero) is judged on the scorer's copy of the input (security issue, point 6).

EvalPlus checks the returned root on the input as the program left it, so
``xs.clear(); return 0.0`` passes there; the HF test bigcode runs asserts
``_poly(*candidate(*inp), inp) <= atol``, which ``return [[]]`` passes. Here both modes
evaluate ``abs(poly(xs, root)) <= atol`` with the scorer's own ``xs`` and only for a root that
is one real number: the canonical solution and an independent bisection pass, the tricks
fail. ``quirks=True`` keeps the reference tools' verdicts for real answers (every sample
fails, as there) without their holes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from test_code_helpers import requires_data, write_samples

from evalsuite.scoring.code import evalplus as code_evalplus
from evalsuite.scoring.code.data import load_dataset
from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.scoring.sandbox import wire
from evalsuite.testing.code_variants import variant

BISECTION = """\
import math


def find_zero(xs: list):
    # bisection on the sign change nearest 0, then the best of the neighbouring floats

    def f(x):
        return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))

    edges = [0.0] + [2.0**k for k in range(-8, 30)]
    pairs = [(0.0, edges[1]), (-edges[1], 0.0)]
    pairs += [p for a, b in zip(edges[1:], edges[2:]) for p in ((a, b), (-b, -a))]
    for a, b in pairs:
        if f(a) == 0:
            return a
        if (f(a) < 0) != (f(b) < 0):
            break
    for _ in range(200):
        m = (a + b) / 2
        if (f(m) < 0) == (f(a) < 0):
            a = m
        else:
            b = m
    best = a
    for direction in (math.inf, -math.inf):  # big terms: only some floats round near 0
        x = a
        for _ in range(200):
            x = math.nextafter(x, direction)
            if abs(f(x)) < abs(f(best)):
                best = x
    return best
"""
TRICKS = {  # each returns something that is no root of the polynomial it was given
    "clear": "def find_zero(xs: list):\n    xs.clear()\n    return 0.0\n",
    "zero_coefficients": "def find_zero(xs: list):\n    xs[:] = [0.0] * len(xs)\n    return 0.0\n",
    "junk": "def find_zero(xs: list):\n    return [[]]\n",
    "swap_input": "def find_zero(xs: list):\n    xs[:] = [1.0, -1.0]\n    return 1.0\n",
    "root_in_a_list": "def find_zero(xs: list):\n    xs[:] = [0.0, 1.0]\n    return [0.0]\n",
    "nan": "def find_zero(xs: list):\n    return float('nan')\n",
}


@pytest.fixture(scope="module")
def find_zero_only(tmp_path_factory) -> Path:
    """The real HumanEval/32 from the release, as a one-task dataset."""
    with gzip.open(requires_data(), "rt") as f:
        rows = [json.loads(line) for line in f]
    path = tmp_path_factory.mktemp("humaneval-32") / "find_zero.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["task_id"] == "HumanEval/32"))
    return path


@pytest.fixture(scope="module")
def samples(find_zero_only: Path) -> tuple[Path, list[str]]:
    problem = load_dataset(find_zero_only).problems["HumanEval/32"]
    programs = {"canonical": variant(problem, "canonical"), "bisection": BISECTION, **TRICKS}
    rows = [{"task_id": "HumanEval/32", "solution": code} for code in programs.values()]
    return write_samples(find_zero_only.with_name("samples.jsonl"), rows), list(programs)


@pytest.mark.parametrize("mode", ["evalplus", "paper"])
def test_only_real_roots_of_the_scorers_polynomial_pass(samples, find_zero_only, mode) -> None:
    path, kinds = samples
    report = score_humaneval_plus(path, dataset=find_zero_only, mode=mode, workers=2)
    verdicts = dict(zip(kinds, report.samples, strict=True))
    assert verdicts["canonical"].status == "pass"
    assert verdicts["bisection"].status == "pass"
    for kind in TRICKS:
        result = verdicts[kind]
        assert result.status == "fail", (kind, result)
        assert (result.failed_split, result.failed_index) == ("base", 0), (kind, result)


@pytest.mark.parametrize("mode", ["evalplus", "paper"])
def test_quirks_keep_the_reference_verdicts_without_the_holes(samples, find_zero_only, mode):
    """EvalPlus 0.3.1 and the HF test fail every real find_zero answer; the tricks fail too."""
    path, kinds = samples
    report = score_humaneval_plus(path, dataset=find_zero_only, mode=mode, workers=2, quirks=True)
    assert [s.status for s in report.samples] == ["fail"] * len(kinds)
    if mode == "evalplus":
        assert all(
            s.reference == {"base_status": "fail", "plus_status": "fail"} for s in report.samples
        )
    else:
        assert all(s.reference == {"result": "failed"} for s in report.samples)


def test_a_root_is_one_real_number() -> None:
    assert code_evalplus.real_root(0.5) == 0.5
    assert code_evalplus.real_root(2) == 2.0
    assert code_evalplus.real_root(wire.SubValue("MyFloat", 0.25)) == 0.25
    for junk in ([[]], [0.0], (0.0,), 1j, "0", None, wire.Opaque("Root"), [[]][0]):
        assert code_evalplus.real_root(junk) is None, junk


def test_the_input_the_program_sends_back_is_ignored() -> None:
    xs = [-6.0, 11.0, -6.0, 1.0]  # (x - 1)(x - 2)(x - 3)
    assert code_evalplus.root_ok(2.0, [xs], 1e-4)
    assert not code_evalplus.root_ok(0.0, [xs], 1e-4)
    assert not code_evalplus.root_ok([[]], [xs], 1e-4)
    assert not code_evalplus.root_ok(float("inf"), [xs], 1e-4)
    assert not code_evalplus.root_ok(1e300, [xs], 1e-4)  # OverflowError in poly: no pass
