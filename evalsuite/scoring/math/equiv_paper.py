"""Paper-mode equivalence: sympy ``parse_latex`` on both sides, ``simplify(a - b) == 0``.

Exactly the RaSA grader: any exception while parsing, subtracting or simplifying means "not
equal", and there is no string fallback, not even for two identical strings. (lm-eval
0.4.13's ``is_equiv`` returns True for identical non-empty strings before it parses, so the
tuples, intervals and matrices that sympy cannot parse are right there and wrong here.)

Parsing dominates the cost (a few ms per answer, mostly ANTLR's full-context prediction and
one ``from sympy import *`` per number literal), so ``parse_latex_exact`` runs sympy's own
generated lexer, parser and converter with two changes that cannot change a result:

* two-stage prediction: ANTLR's SLL mode first, and the default LL mode only if SLL
  reports a syntax error. ANTLR guarantees that an SLL parse that succeeds is the parse LL
  would return, so an answer gets exactly sympy's tree or, after the LL retry, exactly
  sympy's error;
* number literals are converted once per distinct string, and plain integers without the
  string parser: ``Integer(int("12"))`` is what ``sympy.Number("12")`` returns.

The converter is a private copy of sympy's module (loaded from sympy's own source file), so
sympy itself is not patched. A test compares ``srepr`` of both parsers on every MATH gold
answer and thousands of variants. Parses and verdicts are cached per process: a worker
grading many responses to one problem parses the gold once.

After parsing, ``simplify`` is the other half of the cost, and most of it goes on pairs that
are not equal (``simplify`` tries every rewrite before giving up). ``simplify`` only ever
returns an expression equal to its input, so when ``a - b`` is provably nonzero at one point,
``simplify(a - b) == 0`` cannot hold and the verdict is False without it. "Provably" means
sympy's ``evalf`` with ``strict=True`` (it raises instead of returning a value it cannot
vouch for to 30 digits) at fixed rational values of the free symbols, and a result well away
from 0. Anything else (an atom, a zero or unknown value, a pole, an unevaluated function, any
exception) goes to ``simplify`` as before. Checked against ``simplify`` itself on the 5000
MATH pairs of bench/math_grading.py and the labelled pairs of data/math_equiv: never a
different verdict (tests/test_math_paper.py keeps checking it).
"""

from __future__ import annotations

import cmath
import functools
import importlib.util
import re
import types
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sympy
from sympy.parsing.latex import check_matrix_delimiters  # loads sympy's LaTeX package (no threads)

CACHE_SIZE = 1 << 14
PROBE_DIGITS = 30  # evalf precision of the nonzero probe
PROBE_MIN = 1e-9  # |a - b| at the probe point must exceed this to skip simplify
_PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,99}")


class _SympyWithCachedNumbers(types.ModuleType):
    """``sympy`` as the private converter sees it: the same, but with a cached ``Number``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sympy, name)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _number(text: str) -> sympy.Number:
    if _PLAIN_INT.fullmatch(text):
        return sympy.Integer(int(text))
    return sympy.Number(text)


@functools.cache
def _latex_backend() -> tuple[Any, Any, Any]:
    """(antlr4, prediction modes, private converter module), built once per process."""
    try:
        antlr_version = version("antlr4-python3-runtime")
    except PackageNotFoundError:
        antlr_version = "none"
    if not antlr_version.startswith("4.11"):
        raise ImportError(
            f"sympy's LaTeX parser needs antlr4-python3-runtime 4.11, found {antlr_version}; "
            "run: pip install 'antlr4-python3-runtime==4.11.*'"
        )
    import antlr4
    from antlr4.atn.PredictionMode import PredictionMode

    spec = importlib.util.find_spec("sympy.parsing.latex._parse_latex_antlr")
    if spec is None or spec.loader is None:
        raise ImportError("sympy.parsing.latex._parse_latex_antlr not found; reinstall sympy")
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    if converter.LaTeXParser is None or converter.MathErrorListener is None:
        raise ImportError("sympy cannot load its ANTLR LaTeX parser; reinstall sympy")
    proxy = _SympyWithCachedNumbers("sympy")
    proxy.Number = _number  # type: ignore[attr-defined]
    converter.sympy = proxy  # type: ignore[attr-defined]
    return antlr4, PredictionMode, converter


def check_backend() -> None:
    """Raise ImportError (with the fix) when the LaTeX parser cannot run in this process."""
    _latex_backend()


def parse_latex_exact(text: str) -> sympy.Basic:
    """``sympy.parsing.latex.parse_latex(text)``, same result or same failure, faster."""
    antlr4, modes, converter = _latex_backend()
    check_matrix_delimiters(text)
    text = text.strip()
    try:
        relation = _parse(text, antlr4, converter, modes.SLL)
    except Exception:  # a real error, or an input that needs LL: LL decides
        relation = _parse(text, antlr4, converter, modes.LL)
    return converter.convert_relation(relation)


def _parse(text: str, antlr4: Any, converter: Any, mode: Any) -> Any:
    listener = converter.MathErrorListener(text)
    lexer = converter.LaTeXLexer(antlr4.InputStream(text))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = converter.LaTeXParser(antlr4.CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser._interp.predictionMode = mode
    return parser.math().relation()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parsed(text: str) -> sympy.Basic | None:
    """The parse of ``text``, or None when parsing raises (any exception but ImportError)."""
    try:
        return parse_latex_exact(text)
    except ImportError:
        raise
    except Exception:
        return None


def nonzero_at_a_point(diff: sympy.Basic) -> bool:
    """True only when ``diff`` is a number-valued expression whose value, at fixed rational
    values of its free symbols, ``evalf`` vouches for and which is clearly not 0.

    False means "cannot tell" (never "it is zero"): the caller then runs ``simplify``.
    """
    if not isinstance(diff, sympy.Expr) or not diff.args:
        return False  # atoms: simplify returns them at once, nothing to save
    symbols = sorted(diff.free_symbols, key=sympy.default_sort_key)
    point = {
        s: sympy.Rational(7 * i + 5, 11) + sympy.Rational(1, 101 + 2 * i)
        for i, s in enumerate(symbols)
    }
    try:
        value = diff.evalf(PROBE_DIGITS, subs=point, strict=True)
        if not value.is_number:
            return False
        z = complex(value)
    except Exception:  # PrecisionExhausted, a pole, an unevaluated function, ...
        return False
    return cmath.isfinite(z) and abs(z) > PROBE_MIN


@functools.lru_cache(maxsize=CACHE_SIZE)
def paper_equiv(pred: str, gold: str) -> bool:
    """The paper's verdict on two normalised answers (see the module docstring)."""
    first = _parsed(pred)
    if first is None:
        return False
    second = _parsed(gold)
    if second is None:
        return False
    try:
        diff = first - second
        if nonzero_at_a_point(diff):
            return False
        return bool(sympy.simplify(diff) == 0)
    except Exception:
        return False
