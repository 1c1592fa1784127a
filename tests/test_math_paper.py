"""Paper mode is the RaSA grader: checked against sympy's parser and lm-eval's own utilities.

* our fast LaTeX parser gives sympy's ``parse_latex`` result (``srepr``) or fails where it
  fails, on every distinct normalised gold answer and on rewritten and wrong answers;
* all 5000 gold answers graded against themselves: how many paper mode calls equal, and
  why the others are not (the count and the categories are printed and pinned);
* paper mode against an independent route through lm-eval 0.4.13's ``normalize_final_answer``
  and ``is_equiv`` on > 1000 (response, gold) pairs built from the data: the only
  differences are lm-eval's identical-string shortcut, shown explicitly;
* the nonzero probe that lets paper mode skip ``simplify`` fires only where ``simplify``
  itself says "not equal" (labelled pairs of data/math_equiv and the MATH variants).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from evalsuite.scoring import grade_math
from evalsuite.scoring.math.equiv_paper import nonzero_at_a_point, paper_equiv, parse_latex_exact
from evalsuite.scoring.math.extract import last_boxed_content
from evalsuite.scoring.math.normalize import normalize_final_answer
from evalsuite.testing.math_variants import GARBAGE_RESPONSES, response, rewrites, wrong_answers

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MATH_TEST = DATA / "math" / "test.jsonl"
EQUIV_PAIRS = DATA / "math_equiv" / "math_equiv_pairs.jsonl"
needs_math = pytest.mark.skipif(
    not MATH_TEST.is_file(), reason=f"MATH test set not found at {MATH_TEST} (shared data absent)"
)


@pytest.fixture(scope="module")
def math_rows() -> list[dict]:
    return [json.loads(line) for line in MATH_TEST.read_text().splitlines()]


@pytest.fixture(scope="module")
def golds(math_rows) -> list[str]:
    return [last_boxed_content(row["solution"]) for row in math_rows]


@pytest.fixture(scope="module")
def minerva():
    return pytest.importorskip("lm_eval.tasks.minerva_math.utils")


def _sympy_parse(text: str) -> str:
    from sympy import srepr
    from sympy.parsing.latex import parse_latex

    try:
        return srepr(parse_latex(text))
    except Exception as e:
        return f"raises {type(e).__name__}"


def _our_parse(text: str) -> str:
    from sympy import srepr

    try:
        return srepr(parse_latex_exact(text))
    except Exception as e:
        return f"raises {type(e).__name__}"


def test_identical_strings_are_not_a_shortcut(minerva):
    """lm-eval says a tuple equals itself without parsing; the paper's grader says no."""
    for text in ("(1,2)", "[0,\\infty)", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"):
        assert _sympy_parse(text).startswith("raises")  # sympy cannot parse it...
        assert minerva.is_equiv(text, text) is True  # ...lm-eval 0.4.13 returns True first
        assert paper_equiv(text, text) is False  # the paper's grader: any parse error = wrong
    for text in ("\\frac{1}{2}", "2\\sqrt{3}", "x^2+1"):  # parseable: both say equal
        assert minerva.is_equiv(text, text) is True
        assert paper_equiv(text, text) is True
    assert paper_equiv("", "") is False and minerva.is_equiv("", "") is False


def test_paper_equiv_basics():
    assert paper_equiv("\\frac{1}{2}", "0.5")
    assert paper_equiv("\\sqrt{2}+1", "1+\\sqrt{2}")
    assert paper_equiv("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}")
    assert not paper_equiv("3", "4")
    assert not paper_equiv("\\frac{1}{2}", "\\frac{1}{3}")
    assert not paper_equiv("x", "y")
    assert not paper_equiv("\\frac{1}{", "\\frac{1}{")  # parse error, even when identical


def test_paper_quirks_are_kept(minerva):
    """The reference's oddities are the metric: kept, and the same as lm-eval's route."""
    cases = [
        ("2,x", "2", True),  # sympy's non-strict parser stops at the comma
        ("4,6", "46", True),  # the original comma rule fuses digits (lm-eval: 4 vs 46)
        ("\\frac9{5}", "1.8", False),  # Minerva's \frac rule makes \frac{9}{{}5}
        (".5", "0.5", False),  # the grammar has no leading-dot numbers
        ("50\\%", "50", False),  # \% survives normalisation and does not parse
    ]
    for pred, gold, expected in cases:
        a, b = normalize_final_answer(pred), normalize_final_answer(gold)
        assert paper_equiv(a, b) is expected, (pred, gold)
        assert minerva.is_equiv(a, b) is expected, (pred, gold)  # on our normalised strings


@needs_math
def test_fast_parser_is_sympys_parser(golds):
    texts = {normalize_final_answer(g) for g in golds}
    for gold in golds[::5]:  # rewritten and wrong answers of every fifth problem
        texts.update(normalize_final_answer(v) for v in rewrites(gold) + wrong_answers(gold, "7"))
    texts.update(["", "   ", "1,000", "3.14159", "007", "10^{10}", "-\\frac{1}{2}", "I don't"])
    failures = 0
    for text in sorted(texts):
        ours = _our_parse(text)
        assert ours == _sympy_parse(text), text
        failures += ours.startswith("raises")
    print(f"\nparser: {len(texts)} distinct strings, identical results; {failures} fail to parse")
    assert len(texts) > 3000


def _category(gold: str) -> str:
    """Why a gold answer cannot equal itself in paper mode (sympy cannot parse it)."""
    g = gold.strip()
    if re.search(r"\\begin\{[pbv]?matrix\}", g):
        return "matrix or vector"
    bracketed = re.fullmatch(r"(\\left)?[\[(].*,.*(\\right)?[\])]", g)
    if "\\cup" in g or "\\infty" in g or (bracketed and ("[" in g[:6] or "]" in g[-7:])):
        return "interval"
    if bracketed:
        return "tuple (or open interval)"
    if "\\%" in g:
        return "percent sign"
    if re.match(r"\.\d", g):
        return "decimal without a leading 0"
    if re.search(r"\\[dt]?frac ?[\d\\]", g):
        return "unbraced \\frac (Minerva's rule mangles it)"
    if "\\{" in g:
        return "set"
    if "<" in g:
        return "inequality"
    fused = normalize_final_answer(g)
    if fused.isdigit() and fused.startswith("0") and "," in g:
        return "comma rule fuses a list into a number with a leading 0"
    if "\\text" in g:
        return "text"
    return "other"


# Pinned from a run on the 5000 MATH test gold answers (sympy 1.14, antlr 4.11.1).
GOLD_SELF_EQUAL = 4737
GOLD_FAILURES = {
    "comma rule fuses a list into a number with a leading 0": 6,
    "tuple (or open interval)": 110,
    "interval": 59,
    "matrix or vector": 59,
    "percent sign": 15,
    "unbraced \\frac (Minerva's rule mangles it)": 7,
    "decimal without a leading 0": 4,
    "set": 1,
    "inequality": 1,
    "text": 1,
}


@needs_math
def test_every_gold_against_itself(math_rows, golds):
    rows = [
        {"id": r["idx"], "prediction": response(g), "solution": r["solution"], "type": r["type"]}
        for r, g in zip(math_rows, golds, strict=True)
    ]
    report = grade_math(rows, mode="paper", workers=2)
    assert report.status_counts() == {"ok": 5000, "invalid": 0, "timeout": 0, "error": 0}
    equal = sum(bool(s.paper) for s in report.samples)
    failures = Counter(_category(s.gold) for s in report.samples if not s.paper)
    print(f"\ngold vs gold, paper mode: {equal}/5000 equal; not equal: {dict(failures)}")
    assert equal == GOLD_SELF_EQUAL
    assert dict(failures) == GOLD_FAILURES
    # and each of those is a parse failure, not a simplify verdict
    for s in report.samples:
        if not s.paper:
            assert _our_parse(normalize_final_answer(s.gold)).startswith("raises"), s.gold


def _pairs(golds: list[str]) -> list[tuple[str, str]]:
    """(response, gold): gold, rewrites and wrong answers for every 12th problem, + garbage."""
    pairs = []
    for i in range(0, len(golds), 12):
        gold = golds[i]
        answers = [gold, *rewrites(gold)[:2], *wrong_answers(gold, golds[(i + 5) % len(golds)])[:2]]
        pairs += [(response(a), gold) for a in answers]
        pairs.append((GARBAGE_RESPONSES[i % len(GARBAGE_RESPONSES)], gold))
    return pairs


def _lm_eval_route(minerva, text: str, gold: str) -> tuple[bool, str | None, str]:
    """lm-eval's route: (verdict, normalised answer or None when invalid, normalised gold)."""
    b = minerva.normalize_final_answer(gold)
    if "The answer is: " not in text:
        return False, None, b
    answer = text.split("The answer is: ")[-1].split(".\n")[0].strip()
    answer = answer[:-1] if answer.endswith(".") else answer
    a = minerva.normalize_final_answer(answer)
    return minerva.is_equiv(a, b), a, b


@needs_math
def test_paper_mode_equals_lm_eval_route_but_for_two_known_differences(golds, minerva):
    """Differences: lm-eval's identical-string shortcut, and its rewritten normalisation.

    Where the normalisations differ, lm-eval's own equivalence applied to *our* normalised
    strings must give our verdict, so the sympy half stays checked on those pairs too.
    """
    pairs = _pairs(golds)
    assert len(pairs) >= 1000
    report = grade_math([{"prediction": p, "gold": g} for p, g in pairs], mode="paper")
    assert report.status_counts()["timeout"] == report.status_counts()["error"] == 0
    shortcut_only, normalisation, agree = [], [], 0
    for (text, gold), sample in zip(pairs, report.samples, strict=True):
        reference, a, b = _lm_eval_route(minerva, text, gold)
        if sample.paper == reference:
            agree += 1
            continue
        ours_a, ours_b = normalize_final_answer(sample.extracted), normalize_final_answer(gold)
        if (ours_a, ours_b) != (a, b):
            if ours_a == ours_b:  # lm-eval would shortcut again: the paper parses instead
                assert _sympy_parse(ours_a).startswith("raises") and not sample.paper
            else:
                assert minerva.is_equiv(ours_a, ours_b) == sample.paper, (text, gold)
            normalisation.append((sample.extracted, gold, sample.paper))
            continue
        # identical normalised strings that sympy cannot parse: lm-eval says equal, we do not
        assert a == b and reference and not sample.paper, (text, gold, sample)
        shortcut_only.append(gold)
    print(
        f"\npaper vs lm-eval route: {len(pairs)} pairs, {agree} agree; "
        f"{len(shortcut_only)} differ by lm-eval's identical-string shortcut (e.g. "
        f"{shortcut_only[:3]}); {len(normalisation)} by lm-eval's rewritten normalisation: "
        f"{normalisation}"
    )
    assert shortcut_only, "expected tuples/intervals that only lm-eval's shortcut accepts"
    assert agree > 0.9 * len(pairs)
    assert sum(bool(s.paper) for s in report.samples) > 300  # a real mix of verdicts
    assert sum(not s.paper for s in report.samples) > 300


@needs_math
@pytest.mark.skipif(not EQUIV_PAIRS.is_file(), reason=f"labelled pairs not found at {EQUIV_PAIRS}")
def test_nonzero_probe_never_overrules_simplify(golds):
    """Where the probe skips ``simplify`` (verdict False), ``simplify(a - b) == 0`` is False too.

    On the labelled pairs and on the gold, two rewrites and two wrong answers of every 10th
    MATH problem; ``simplify`` runs on every pair here, so a probe that fired on an equal
    pair would fail the test. The probe must also fire often, or it saves nothing.
    """
    import sympy

    rows = [json.loads(line) for line in EQUIV_PAIRS.read_text().splitlines()]
    texts = [(r["given_answer"], r["ground_truth_answer"]) for r in rows]
    for i in range(0, len(golds), 10):
        gold = golds[i]
        variants = [
            gold,
            *rewrites(gold)[:2],
            *wrong_answers(gold, golds[(i + 3) % len(golds)])[:2],
        ]
        texts += [(v, gold) for v in variants]
    fired = equal = 0
    for given, truth in texts:
        try:
            diff = parse_latex_exact(normalize_final_answer(given)) - parse_latex_exact(
                normalize_final_answer(truth)
            )
        except Exception:
            continue
        probe = nonzero_at_a_point(diff)
        try:
            same = bool(sympy.simplify(diff) == 0)
        except Exception:
            same = False
        assert not (probe and same), (given, truth, diff)
        fired += probe
        equal += same
    print(f"\nnonzero probe: {len(texts)} pairs, fired on {fired}, simplify said equal on {equal}")
    assert fired > 300 and equal > 300
