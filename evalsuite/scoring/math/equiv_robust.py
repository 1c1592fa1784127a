"""Robust-mode equivalence: careful normalisation, a few MATH answer conventions, math-verify.

Paper mode is the metric the RaSA tables report; this one answers "is the answer right?"
more reliably, and is reported beside it, never instead. Order of checks:

1. both answers normalised (``normalize_robust``); identical strings are equal (unlike
   paper mode, robust mode has a string fallback: ``(1,2)`` equals ``(1,2)``);
2. word answers (``odd``, ``Friday``, ``LQSX``) compare as words, case-insensitively: a
   product of symbols is the wrong reading of ``LXQS``, whose letter order matters;
3. a gold written as a fraction of integers ("express your answer as a common fraction")
   is matched only by the same fraction: ``\\frac{72}{375}`` is not the reduced answer
   ``\\frac{24}{125}``, and ``\\frac{31.95}{2}`` is not a common fraction at all (decimals
   such as ``0.5`` still go to math-verify and may match);
4. two equations match when their sides match, either way round, or when ``lhs - rhs`` is
   the same expression: ``x+y-z-1=0`` is not the asked-for form ``3x+3y-3z-3=0``;
5. anything else: math-verify (sets unordered, intervals with their brackets, tuples
   ordered, matrices, ``\\pm`` expanded, numbers to 6 decimals), with ``i`` read as the
   imaginary unit when the other side is complex.

These conventions were chosen from MATH's answer instructions, and checked against the
labelled pairs of ``data/math_equiv`` (agreement and every disagreement are in the tests'
output and bench/RESULTS.md). math-verify's own signal-based timeouts are off: the worker
pool kills a worker that runs past the limit.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.parser import NormalizationConfig

from evalsuite.scoring.math.normalize_robust import (
    WORD,
    int_fraction,
    is_decimal_fraction,
    normalize_robust,
)

CACHE_SIZE = 1 << 14


def quiet_math_verify() -> None:
    """math-verify warns on every call that its own timeout is off; that is on purpose."""
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@functools.cache
def _extraction_config() -> tuple[Any, ...]:
    """math-verify's defaults, but units left to ``normalize_robust`` (it reads "2m" as 2)."""
    normalization = NormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all"
    )
    return (LatexExtractionConfig(normalization_config=normalization), ExprExtractionConfig())


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parsed(answer: str) -> tuple[Any, ...]:
    """math-verify's reading of one normalised answer: (sympy object, ..., string)."""
    text = f"\\boxed{{{answer}}}"
    return tuple(parse(text, list(_extraction_config()), parsing_timeout=None))  # type: ignore[arg-type]


def _verify(gold: Any, pred: Any) -> bool:
    return bool(verify(list(gold), list(pred), timeout_seconds=None))


def _is_zero(expr: Any) -> bool:
    try:
        return bool(sympy.simplify(expr) == 0)
    except Exception:
        return False


def _same_equation(pred: sympy.Eq, gold: sympy.Eq) -> bool:
    """Same sides (either way round), or the same ``lhs - rhs``; not up to a factor."""
    (pl, pr), (gl, gr) = pred.args, gold.args
    return (
        (_is_zero(pl - gl) and _is_zero(pr - gr))
        or (_is_zero(pl - gr) and _is_zero(pr - gl))
        or _is_zero((pl - pr) - (gl - gr))
    )


def _has_i(parsed: tuple[Any, ...]) -> bool:
    return any(isinstance(p, sympy.Basic) and _i_symbols(p) for p in parsed)


def _i_symbols(expr: sympy.Basic) -> dict[sympy.Symbol, Any]:
    # latex2sympy gives its i assumptions (real=False), so match by name
    return {s: sympy.I for s in expr.free_symbols if getattr(s, "name", None) == "i"}


def _with_imaginary_unit(parsed: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p.xreplace(_i_symbols(p)) if isinstance(p, sympy.Basic) else p for p in parsed)


def _complex(parsed: tuple[Any, ...]) -> bool:
    """Whether an answer holds ``I`` or the square root of a negative number."""
    for p in parsed:
        if isinstance(p, sympy.Basic):
            if p.has(sympy.I):
                return True
            for power in p.atoms(sympy.Pow):
                if power.exp == sympy.S.Half and power.base.is_negative:
                    return True
    return False


@functools.lru_cache(maxsize=CACHE_SIZE)
def robust_equiv(pred: str, gold: str) -> bool:
    """Robust verdict on two extracted (not yet normalised) final answers."""
    p, g = normalize_robust(pred), normalize_robust(gold)
    if not p:
        return False
    if p.replace(" ", "") == g.replace(" ", ""):
        return True
    if WORD.fullmatch(p) or WORD.fullmatch(g):
        return p.replace(" ", "").lower() == g.replace(" ", "").lower()
    gold_fraction = int_fraction(g)
    if gold_fraction is not None:
        pred_fraction = int_fraction(p)
        if pred_fraction is not None:
            return pred_fraction == gold_fraction
        if is_decimal_fraction(p):
            return False
    gold_parsed, pred_parsed = _parsed(g), _parsed(p)
    if not gold_parsed or not pred_parsed:
        return False
    if isinstance(gold_parsed[0], sympy.Eq) and isinstance(pred_parsed[0], sympy.Eq):
        return _same_equation(pred_parsed[0], gold_parsed[0])
    if _verify(gold_parsed, pred_parsed):
        return True
    # "4+i" against "4+\sqrt{-1}": math-verify reads i as a symbol
    if _has_i(pred_parsed) != _has_i(gold_parsed) and (
        _complex(gold_parsed) or _complex(pred_parsed)
    ):
        return _verify(_with_imaginary_unit(gold_parsed), _with_imaginary_unit(pred_parsed))
    return False
