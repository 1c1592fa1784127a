"""Minerva's ``normalize_final_answer``, exactly as the RaSA authors ran it.

Paper mode normalises both the extracted answer and the gold with this function before
sympy compares them, so every character matters: a different normalisation is a different
metric. The reference is ``utils/minerva_utils.py`` in the RaSA repository (zwhe99/RaSA),
which is the function printed in appendix D of Lewkowycz et al. (2022): plain substring
replacements, a few regexes, and a comma rule. Restated here, not imported.

lm-eval 0.4.13 ships a *changed* version, and paper mode deliberately does not follow it:

* lm-eval removes unit words only as whole words and never inside LaTeX command names;
  the original's plain ``replace("ft", "")`` turns ``\\left`` into ``\\le`` and
  ``replace("ways", "")`` does not care where it is;
* lm-eval rewrites ``\\sqrt[3]a``; the original turns ``\\sqrt[3]{8}`` into ``\\sqrt{[}3]{8}``;
* lm-eval strips commas only from true thousands groups; the original drops every comma
  whenever the rest is digits, so the tuple ``4,6,14,15`` becomes the number ``461415``.

``tests/test_math_paper.py`` lists these differences against lm-eval's function.
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

# removed wherever they occur, as plain substrings, in this order
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

_MATH_SPAN = re.compile(r"(.*?)(\$)(.*?)(\$)(.*)")
_UNWRAP = tuple(
    re.compile(p)
    for p in (
        r"(\\text\{)(.*?)(\})",
        r"(\\textbf\{)(.*?)(\})",
        r"(\\overline\{)(.*?)(\})",
        r"(\\boxed\{)(.*)(\})",
    )
)
_FRAC_SHORT = re.compile(r"(frac)([^{])(.)")
_SQRT_SHORT = re.compile(r"(sqrt)([^{])")


def normalize_final_answer(final_answer: str) -> str:
    """Normalise a final answer the way the RaSA authors' ``minerva_utils.py`` does.

    Not linear-time on adversarial input (the ``$...$`` regex backtracks), which is one
    reason grading runs it inside the worker pool, under the per-item time limit.
    """
    answer = final_answer.split("=")[-1]  # "x = 5" -> " 5"
    for before, after in SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in REMOVED_EXPRESSIONS:  # plain substrings, even inside \left or \infty
        answer = answer.replace(expr, "")

    # keep what is inside $...$, \text{}, \textbf{}, \overline{} and \boxed{}
    answer = _MATH_SPAN.sub("$\\3$", answer)
    for pattern in _UNWRAP:
        answer = pattern.sub("\\2", answer)

    # shorthand TeX: \frac12 -> \frac{1}{2}, \sqrt2 -> \sqrt{2}
    answer = _FRAC_SHORT.sub("frac{\\2}{\\3}", answer)
    answer = _SQRT_SHORT.sub("sqrt{\\2}", answer)
    answer = answer.replace("$", "")

    if answer.replace(",", "").isdigit():  # 100,000 -> 100000 (and 4,6 -> 46)
        answer = answer.replace(",", "")
    return answer
