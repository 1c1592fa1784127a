"""MATH answer extraction and Minerva normalisation, against independent references.

References: the extraction rule written out here from the protocol (one line, like the
RaSA scripts), and lm-eval 0.4.13's own ``minerva_math`` utilities for the boxed gold and
``normalize_final_answer`` (which our production code does not import). Normalisation follows
the original Minerva function the RaSA scripts ran, which lm-eval 0.4.13 changed in three
ways; the differences are checked to be exactly those, and the original's rules are checked
on hand-worked cases.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from evalsuite.scoring.math.extract import (
    extract_paper_answer,
    extract_robust_answer,
    last_boxed_content,
)
from evalsuite.scoring.math.normalize import REMOVED_EXPRESSIONS, normalize_final_answer
from evalsuite.testing.math_variants import rewrites, wrong_answers

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


# Worked by hand from the rules of appendix D (Lewkowycz et al., 2022), as the RaSA scripts
# run them: substitutions, then every removed expression as a plain substring, then the
# regexes, then the comma rule.
HAND_CHECKED = [
    ("x = \\frac12", "\\frac{1}{2}"),  # after the last "=", the \frac shorthand
    ("100,000", "100000"),
    ("12, 10, 6", "12106"),  # spaces go, then every comma: a tuple becomes one number
    ("0,1", "01"),
    ("12\\text{ and }13", "1213"),  # "\text{and}" becomes "," and then the comma goes too
    ("[6,\\infty)", "[6,\\iny)"),  # "ft" removed from inside \infty
    ("\\left(\\frac34,5\\right)", "\\le(\\frac{3}{4},5\\right)"),  # and from \left
    ("\\sqrt[3]{8}", "\\sqrt{[}3]{8}"),  # the \sqrt shorthand rule sees "["
    ("\\sqrt2", "\\sqrt{2}"),
    ("10\\text{ inches}", "10"),  # the unit, then the empty \text{}
    ("2\\pi cm", "2\\pi"),
    ("$\\boxed{7}$", "7"),
    ("\\$5.00", "5.00"),
    ("30^\\circ", "30"),
    ("an apple", "apple"),  # "an " is a plain substitution, anywhere
]


@pytest.mark.parametrize(("text", "expected"), HAND_CHECKED)
def test_normalize_follows_the_original_rules(text, expected):
    assert normalize_final_answer(text) == expected


def _difference_kinds(text: str, ours: str, theirs: str) -> set[str]:
    """Which of lm-eval 0.4.13's three rewrites of the original explains ``ours != theirs``."""
    kinds = set()
    if ours.replace(",", "") == theirs.replace(",", ""):
        # the original drops every comma when only digits remain (4,6 -> 46, but -2,016
        # stays); lm-eval drops commas from signed thousands groups only
        kinds.add("comma rule")
    if "sqrt[" in text:
        kinds.add("indexed root")
    words = [w for w in REMOVED_EXPRESSIONS if w.isalpha()]
    for match in re.finditer("|".join(words), text):
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if before.isalpha() or before == "\\" or after.isalpha():
            kinds.add("unit word removed inside a longer word or command")
    return kinds


def _differences(minerva, texts) -> Counter:
    kinds: Counter = Counter()
    for text in texts:
        ours, theirs = normalize_final_answer(text), minerva.normalize_final_answer(text)
        if ours != theirs:
            explained = _difference_kinds(text, ours, theirs)
            assert explained, (
                f"unexplained difference from lm-eval: {text!r}: {ours!r} vs {theirs!r}"
            )
            kinds.update(explained)
            kinds["strings"] += 1
    return kinds


# Pinned from a run over the 2047 distinct MATH gold answers (see the test below).
GOLD_NORMALISATION_DIFFERENCES = {
    "strings": 82,
    "comma rule": 16,
    "unit word removed inside a longer word or command": 66,
}


@needs_math
def test_normalize_differs_from_lm_eval_only_by_its_three_rewrites(math_rows, minerva):
    """lm-eval is the independent route; every string where it differs is explained."""
    golds = sorted({last_boxed_content(row["solution"]) for row in math_rows})
    on_golds = _differences(minerva, golds)
    print(f"\nnormalisation vs lm-eval 0.4.13 on {len(golds)} distinct golds: {dict(on_golds)}")
    assert dict(on_golds) == GOLD_NORMALISATION_DIFFERENCES
    variants = []
    for gold in golds:
        variants += [gold, *rewrites(gold), *wrong_answers(gold, "7")]
        variants += [f"{gold} cm", f"{gold}\\text{{ units}}", f"{gold}^\\circ", f"{gold}."]
    on_variants = _differences(minerva, variants)
    print(f"on {len(variants)} variants: {dict(on_variants)}")
    assert len(variants) > 15000
    assert on_variants["strings"] < len(variants) // 10  # the same function almost everywhere


def test_normalize_on_edge_cases_without_data(minerva):
    differing = [
        t for t in EDGE_CASES if normalize_final_answer(t) != minerva.normalize_final_answer(t)
    ]
    assert differing == [
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        "\\sqrt[3]{8}",
        "\\sqrt[3]a",
        "-1,234,567",
        "0,1",
        "1,2,3",
    ]
    kinds = _differences(minerva, EDGE_CASES)  # each one explained by a known rewrite
    assert kinds["strings"] == len(differing)
