"""Minerva's ``normalize_final_answer``, as lm-evaluation-harness 0.4.13 ships it.

Paper mode normalises both the extracted answer and the gold with this function before
sympy compares them, so every character matters: a different normalisation is a different
metric. Our own implementation (the production path does not import lm-eval, whose task
package pulls in ``datasets``); a test checks it gives lm-eval's result on every MATH gold
answer and on thousands of variants.

lm-eval 0.4.13 differs from the function printed in appendix D of Lewkowycz et al. (2022)
in three places, and we follow lm-eval, because that is the code that scores:

* unit words are first removed as whole words (``2\\pi cm`` loses ``cm``) and later only
  outside LaTeX command names (the appendix's plain ``replace("ft", "")`` turned ``\\left``
  into ``\\le``);
* ``\\sqrt[3]a`` becomes ``\\sqrt[3]{a}`` and indexed roots are left alone by the
  ``\\sqrt2`` rule (the appendix turned ``\\sqrt[3]{8}`` into ``\\sqrt{[}3]{8}``);
* commas are removed only from true thousands groups (``100,000``), so the tuple ``0,1``
  is no longer fused into the number ``01``.
"""

from __future__ import annotations

import re

# (before, after) plain replacements, applied in this order
SUBSTITUTIONS: tuple[tuple[str, str], ...] = (
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    (r"\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
)

# removed wherever they occur (alphabetic ones: see _remove_units), in this order
REMOVED_EXPRESSIONS: tuple[str, ...] = (
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    r"\mathrm{th}",
    r"^\circ",
    r"^{\circ}",
    r"\;",
    r",\!",
    "{,}",
    '"',
    "\\dots",
)

_WORDS = tuple(e for e in REMOVED_EXPRESSIONS if e.isalpha())
# a unit word standing alone (not the tail of a command such as \left)
_WORD_PATTERNS = {w: re.compile(rf"(?<!\\)\b{w}\b") for w in _WORDS}
_COMMAND = re.compile(r"(\\[a-zA-Z]+)")
_MATH_SPAN = re.compile(r"(.*?)(\$)(.*?)(\$)(.*)")
_UNWRAP = tuple(
    re.compile(p)
    for p in (
        r"(\\text\{)(.*?)(\})",
        r"(\\textbf\{)(.*?)(\})",
        r"(\\overline\{)(.*?)(\})",
    )
)
_BOXED = re.compile(r"(\\boxed\{)(.*)(\})")
_FRAC_SHORT = re.compile(r"(frac)([^{])(.)")
_SQRT_INDEXED = re.compile(r"(sqrt)(\[[^\]]*\])(\w)")
_SQRT_SHORT = re.compile(r"(sqrt)(?!\[)([^{])")
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+")


def normalize_final_answer(final_answer: str) -> str:
    """Normalise a final answer the way lm-eval 0.4.13's ``minerva_math`` task does.

    Not linear-time on adversarial input (the ``$...$`` regex backtracks), which is one
    reason grading runs it inside the worker pool, under the per-item time limit.
    """
    answer = final_answer.split("=")[-1]  # "x = 5" -> " 5"
    for word in _WORDS:  # while whitespace still delimits unit words
        answer = _WORD_PATTERNS[word].sub("", answer)
    for before, after in SUBSTITUTIONS:
        answer = answer.replace(before, after)
    answer = _remove_units(answer)

    # keep what is inside $...$, \text{}, \textbf{}, \overline{} and \boxed{}
    answer = _MATH_SPAN.sub("$\\3$", answer)
    for pattern in _UNWRAP:
        answer = pattern.sub("\\2", answer)
    answer = _BOXED.sub("\\2", answer)

    # shorthand TeX: \frac12 -> \frac{1}{2}, \sqrt[3]a -> \sqrt[3]{a}, \sqrt2 -> \sqrt{2}
    answer = _FRAC_SHORT.sub("frac{\\2}{\\3}", answer)
    answer = _SQRT_INDEXED.sub("\\1\\2{\\3}", answer)
    answer = _SQRT_SHORT.sub("sqrt{\\2}", answer)
    answer = answer.replace("$", "")

    if _THOUSANDS.fullmatch(answer):  # 100,000 -> 100000
        answer = answer.replace(",", "")
    return answer


def _remove_units(answer: str) -> str:
    """Remove REMOVED_EXPRESSIONS in order; words only outside LaTeX command names.

    Once spaces are gone, units are glued to their neighbours ("5cm"), so words are removed
    as substrings, but never from inside a command name (``ft`` must not break ``\\left``).
    """
    for expr in REMOVED_EXPRESSIONS:
        if expr.isalpha():
            segments = _COMMAND.split(answer)
            for i in range(0, len(segments), 2):  # even segments are not command names
                segments[i] = segments[i].replace(expr, "")
            answer = "".join(segments)
        else:
            answer = answer.replace(expr, "")
    return answer
