"""MATH answer extraction and Minerva normalisation, against independent references.

References: the extraction rule written out here from the protocol (one line, like the
RaSA scripts), and lm-eval 0.4.13's own ``minerva_math`` utilities for the boxed gold and
``normalize_final_answer``, which our production code does not import.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from evalsuite.scoring.math_extract import (
    extract_paper_answer,
    extract_robust_answer,
    last_boxed_content,
)
from evalsuite.scoring.math_normalize import normalize_final_answer
from evalsuite.scoring.math_variants import rewrites, wrong_answers

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MATH_TEST = DATA / "math" / "test.jsonl"
needs_math = pytest.mark.skipif(
    not MATH_TEST.is_file(), reason=f"MATH test set not found at {MATH_TEST} (shared data absent)"
)


def reference_extract(response: str) -> str | None:
    """The protocol's rule, as the RaSA / MetaMath scripts write it."""
    if "The answer is: " not in response:
        return None
    answer = response.split("The answer is: ")[-1].split(".\n")[0].strip()
    return answer[:-1] if answer.endswith(".") else answer


@pytest.fixture(scope="module")
def math_rows() -> list[dict]:
    return [json.loads(line) for line in MATH_TEST.read_text().splitlines()]


@pytest.fixture(scope="module")
def minerva():
    return pytest.importorskip("lm_eval.tasks.minerva_math.utils")


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("So x = 3.\nThe answer is: 3", "3"),
        ("The answer is: 3.", "3"),
        ("The answer is: 3..", "3."),  # one trailing dot only
        ("The answer is: \\frac{1}{2}.\nThat is all.", "\\frac{1}{2}"),
        ("The answer is: 2.5.\n", "2.5"),
        ("The answer is: 1\nThe answer is: 2", "2"),  # the last marker wins
        ("The answer is:  (1, 2) \n", "(1, 2)"),
        ("The answer is: ", ""),
        ("the answer is: 3", None),  # case matters
        ("The answer is 3", None),
        ("no marker, but \\boxed{3}", None),
    ],
)
def test_paper_extraction(response, expected):
    assert extract_paper_answer(response) == expected
    assert reference_extract(response) == expected


def test_robust_extraction_falls_back_to_the_last_box():
    assert extract_robust_answer("so \\boxed{1} and then \\boxed{\\frac{2}{3}}") == "\\frac{2}{3}"
    assert extract_robust_answer("\\boxed{x} The answer is: 5") == "5"
    assert (
        extract_robust_answer("\\boxed{\\left(1, \\{2\\}\\right)}") == "\\left(1, \\{2\\}\\right)"
    )
    assert extract_robust_answer("\\boxed{1") is None  # unclosed
    assert extract_robust_answer("nothing here") is None


def test_extraction_on_random_texts_matches_the_reference():
    rng = random.Random(0)
    pieces = ["The answer is: ", ".\n", ".", " ", "\n", "x", "5", "\\frac{1}{2}", "$", "The"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        assert extract_paper_answer(text) == reference_extract(text), repr(text)


@needs_math
def test_gold_is_the_last_boxed_answer_like_lm_eval(math_rows, minerva):
    for row in math_rows:
        expected = minerva.remove_boxed(minerva.last_boxed_only_string(row["solution"]))
        assert last_boxed_content(row["solution"]) == expected, row["idx"]


EDGE_CASES = [
    "x = 5",
    "5 \\text{ cm}",
    "2\\pi cm",
    "\\left( 3, \\frac{\\pi}{2} \\right)",
    "\\frac12",
    "\\frac1{10}",
    "\\sqrt2",
    "\\sqrt[3]{8}",
    "\\sqrt[3]a",
    "100,000",
    "-1,234,567",
    "0,1",
    "1,2,3",
    "$\\$5.00$",
    "\\text{(C)}",
    "\\textbf{even}",
    "\\overline{AB}",
    "\\boxed{\\frac{1}{2}}",
    "10\\;\\text{edges}",
    "30^\\circ",
    "30^{\\circ}",
    "5 feet",
    "an apple",
    "a \\mbox{ units}",
    "3 \\ldots 5",
    "\\text{Monday},\\text{and}\\text{Tuesday}",
    '"quoted"',
    "{,}000",
    "1,\\!000",
    "f(x) = x^2 = 4",
    "",
]


@needs_math
def test_normalize_equals_lm_eval_on_every_gold_and_variants(math_rows, minerva):
    checked = 0
    for row in math_rows:
        gold = last_boxed_content(row["solution"])
        variants = [gold, *rewrites(gold), *wrong_answers(gold, "7")]
        variants += [f"{gold} cm", f"{gold}\\text{{ units}}", f"{gold}^\\circ", f"{gold}."]
        for text in variants:
            assert normalize_final_answer(text) == minerva.normalize_final_answer(text), text
            checked += 1
    for text in EDGE_CASES:
        assert normalize_final_answer(text) == minerva.normalize_final_answer(text), text
    assert checked > 30000


def test_normalize_on_edge_cases_without_data(minerva):
    for text in EDGE_CASES:
        assert normalize_final_answer(text) == minerva.normalize_final_answer(text), text
    assert normalize_final_answer("x = \\frac12") == "\\frac{1}{2}"
    assert normalize_final_answer("100,000") == "100000"
    assert normalize_final_answer("0,1") == "0,1"
