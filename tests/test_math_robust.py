"""Robust mode: agreement with the labelled pairs of data/math_equiv, and its conventions.

The labels are people's (and, for 132 pairs, Qwen's grader's) judgements of final answers;
some are noisy (see data/math_equiv/README.md), so the bar is agreement >= 875/896, the
figure of the official PRM800K grader on the same pairs, with every disagreement printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.scoring import grade_math
from evalsuite.scoring.math.equiv_robust import quiet_math_verify, robust_equiv
from evalsuite.scoring.math.normalize_robust import normalize_robust

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = DATA / "math_equiv" / "math_equiv_pairs.jsonl"
needs_pairs = pytest.mark.skipif(
    not PAIRS.is_file(), reason=f"labelled pairs not found at {PAIRS} (shared data absent)"
)
ROBUST_MIN_AGREEMENT = 875


@pytest.fixture(autouse=True, scope="module")
def _quiet():
    quiet_math_verify()


@needs_pairs
def test_agreement_with_labelled_pairs():
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    assert len(rows) == 896
    items = [
        {"id": r["id"], "prediction": f"The answer is: {r['given_answer']}",
         "gold": r["ground_truth_answer"]}
        for r in rows
    ]  # fmt: skip
    report = grade_math(items, mode="both", workers=2)
    assert report.status_counts()["timeout"] == report.status_counts()["error"] == 0
    paper = sum(s.paper == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    robust = sum(s.robust == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    print(f"\nmath_equiv agreement: paper {paper}/896, robust {robust}/896")
    print("robust-mode disagreements (id | given | ground truth | label | robust):")
    for s, r in zip(report.samples, rows, strict=True):
        if s.robust != r["is_correct"]:
            print(
                f"  {r['id']} | {r['given_answer']} | {r['ground_truth_answer']} | "
                f"{r['is_correct']} | {s.robust}"
            )
    assert robust >= ROBUST_MIN_AGREEMENT
    assert robust > paper  # the point of a second grade


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("10000", "10{,}000"),
        ("10,000", "10000"),
        ("1,000,000", "10^6"),
        ("\\dfrac{1}{2}", "\\frac12"),
        ("0.5", "\\frac{1}{2}"),
        ("30", "30^\\circ"),
        ("30^{\\circ}", "30"),
        ("85", "85\\text{ feet}"),
        ("12", "12\\text{ square units}"),
        ("8\\sqrt{3}", "8\\sqrt{3} \\text { square inches}"),
        ("440", "440\\text{ cm}^2"),
        ("44", "44\\%"),
        ("5.00", "\\$5"),
        ("C", "\\text{(C)}"),
        ("(C)", "C"),
        ("odd", "\\text{odd}"),
        ("friday", "\\text{Friday}"),
        ("[2,5)", "\\left[2,5\\right)"),
        ("(-\\infty,3]", "(-\\infty, 3]"),
        ("(2,+\\infty)", "(2,\\infty)"),
        ("5, -3", "-3, 5"),
        ("\\{1,2\\}", "2,1"),
        ("(1,2)", "(1,2)"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        ("3 + 2\\sqrt{2}, 3 - 2\\sqrt{2}", "3 \\pm 2\\sqrt{2}"),
        ("x = 5", "5"),
        ("y = 2x + 3", "y = 3 + 2x"),
        ("4+i, 4-i", "4+\\sqrt{-1}, 4-\\sqrt{-1}"),
        ("19, 43", "19 \\text{ and }43"),
        ("\\frac{-3}{4}", "-\\frac{3}{4}"),
    ],
)
def test_same_answer_written_differently(pred, gold):
    assert robust_equiv(pred, gold), (normalize_robust(pred), normalize_robust(gold))


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("(2,1)", "(1,2)"),  # tuples are ordered
        ("[2,5]", "[2,5)"),  # brackets matter
        ("(1,2)", "[1,2]"),
        ("LXQS", "LQSX"),  # words are not products of symbols
        ("\\frac{72}{375}", "\\frac{24}{125}"),  # not reduced: not the common fraction
        ("\\frac{31.95}{2}", "\\frac{639}{40}"),  # decimals in a fraction
        ("3x+3y-3z-3=0", "x+y-z-1=0"),  # an equation is asked for in a given form
        ("-5x+7y-11z-4=0", "5x-7y+11z+4=0"),
        ("9 p.m.", "9\\text{ a.m.}"),
        ("0.333", "\\frac{1}{3}"),
        ("3.14", "\\pi"),
        ("5", "-5"),
        ("", "5"),
        ("even", "odd"),
        ("2", "2m"),
    ],
)
def test_different_answers(pred, gold):
    assert not robust_equiv(pred, gold), (normalize_robust(pred), normalize_robust(gold))


MATH_TEST = DATA / "math" / "test.jsonl"


@pytest.mark.skipif(not MATH_TEST.is_file(), reason=f"MATH test set not found at {MATH_TEST}")
def test_rewritten_golds_are_equal_and_wrong_answers_are_not():
    from evalsuite.scoring.math.extract import last_boxed_content
    from evalsuite.testing.math_variants import response, rewrites, wrong_answers

    rows = [json.loads(line) for line in MATH_TEST.read_text().splitlines()]
    golds = [last_boxed_content(r["solution"]) for r in rows[::20]]
    items, expected = [], []
    for gold in golds:
        for answer in [gold, *rewrites(gold)]:
            items.append({"prediction": response(answer), "gold": gold})
            expected.append(True)
        for answer in wrong_answers(gold, gold):  # other_gold == gold: no "other answer"
            items.append({"prediction": response(answer), "gold": gold})
            expected.append(False)
    report = grade_math(items, mode="robust", workers=2)
    wrong = [
        (item["prediction"].rsplit(": ", 1)[1], item["gold"], want)
        for item, sample, want in zip(items, report.samples, expected, strict=True)
        if sample.robust != want
    ]
    print(f"\nrobust on {len(items)} rewritten/wrong answers: {len(wrong)} wrong verdicts {wrong}")
    assert not wrong
