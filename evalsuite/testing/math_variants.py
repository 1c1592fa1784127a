"""Deterministic rewrites of MATH gold answers, for the tests and bench/math_grading.py.

A grader is checked on pairs it has never seen: the gold itself, the gold written another
way (``\\frac{1}{2}`` as ``0.5``, ``\\frac12``, ``\\dfrac{1}{2}``; ``a+b`` as ``b+a``;
``10000`` as ``10,000``; ``x = ...``; ``\\boxed{}``), a wrong answer (off by one, a swapped
fraction, another problem's answer), and responses that are garbage. Everything is a pure
function of the data, so two runs build the same pairs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction

_INT = re.compile(r"-?\d+")
_FRAC = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")


def _top_level_split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside braces, brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == sep and depth == 0 and i > 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _fraction(gold: str) -> Fraction | None:
    match = _FRAC.fullmatch(gold.strip())
    if not match or int(match.group(3)) == 0:
        return None
    value = Fraction(int(match.group(2)), int(match.group(3)))
    return -value if match.group(1) else value


def _as_decimal(value: Fraction) -> str | None:
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return None  # not a terminating decimal
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == value else None


def rewrites(gold: str) -> list[str]:
    """Ways of writing ``gold`` that mean the same number or expression."""
    g = gold.strip()
    out: list[str] = [f"x = {g}", f"\\boxed{{{g}}}", f"${g}$"]
    if "\\frac" in g:
        out.append(g.replace("\\frac", "\\dfrac"))
        out.append(re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", g))
    value = _fraction(g)
    if value is not None and (decimal := _as_decimal(value)):
        out.append(decimal)
    if _INT.fullmatch(g):
        n = int(g)
        out += [f"{n}.0", f"\\frac{{{2 * n}}}{{2}}"]
        if abs(n) >= 1000:
            out.append(f"{n:,}")
    plain = not any(c in g for c in "=,<>") and "\\text" not in g
    terms = _top_level_split(g, "+")
    if plain and len(terms) >= 2 and all(t.strip() for t in terms):
        out.append("+".join(reversed(terms)))
    if plain and not g.startswith("-"):
        out.append(f"({g})")
    return [r for r in dict.fromkeys(out) if r != g]


def wrong_answers(gold: str, other_gold: str) -> list[str]:
    """Answers that are not ``gold`` (for a different-valued ``other_gold``, that too)."""
    g = gold.strip()
    out: list[str] = []
    if _INT.fullmatch(g):
        out.append(str(int(g) + 1))
    value = _fraction(g)
    if value is not None and value not in (0, 1, -1):
        out.append(f"\\frac{{{value.denominator}}}{{{abs(value.numerator)}}}")
    if g not in ("0", "") and not any(c in g for c in "=,<>") and not g.startswith("-"):
        out.append(f"-{g}" if _INT.fullmatch(g) or value is not None else f"-({g})")
    if other_gold.strip() != g:
        out.append(other_gold.strip())
    return list(dict.fromkeys(out))


GARBAGE_RESPONSES: tuple[str, ...] = (
    "I am not sure how to solve this problem.",  # no marker: invalid
    "Let's think step by step. The answer is: I don't know.",
    "The answer is: \\frac{1}{",
    "The answer is: ",
    "The answer is: $$$ }{ \\left( ",
    "We get \\boxed{\\text{no idea}} but cannot say.",
)


def response(answer: str) -> str:
    """A response in the paper's format whose extracted answer is exactly ``answer``."""
    return f"Let's think step by step.\nSome working.\nThe answer is: {answer}"


def mixed_pairs(golds: list[str], n: int) -> Iterator[tuple[str, str, str]]:
    """``n`` (kind, response, gold) triples cycling gold / rewrite / wrong / garbage.

    Problem i gets one response; the kind rotates with i, and a kind that has no candidate
    for that gold (no rewrite of ``(1,2)`` applies, say) falls back to the gold itself.
    """
    kinds: tuple[tuple[str, Callable[[int, str], list[str]]], ...] = (
        ("gold", lambda i, g: [g]),
        ("rewrite", lambda i, g: rewrites(g)),
        ("wrong", lambda i, g: wrong_answers(g, golds[(i + 1) % len(golds)])),
        ("rewrite", lambda i, g: rewrites(g)),
        ("wrong", lambda i, g: wrong_answers(g, golds[(i + 7) % len(golds)])),
        ("garbage", lambda i, g: list(GARBAGE_RESPONSES)),
    )
    for i in range(n):
        gold = golds[i % len(golds)]
        kind, make = kinds[i % len(kinds)]
        candidates = make(i, gold)
        if not candidates:
            kind, candidates = "gold", [gold]
        choice = candidates[(i // len(kinds)) % len(candidates)]
        yield kind, (choice if kind == "garbage" else response(choice)), gold
