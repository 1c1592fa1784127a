"""Careful normalisation of final answers for robust mode, and the answer shapes it reads.

Paper mode keeps Minerva's normalisation, quirks included. Robust mode wants "the same
answer, written differently" to compare equal, so before math-verify sees an answer this
removes what carries no mathematical content in a MATH answer: math delimiters, a box,
``\\left``/``\\right``, spacing commands, ``\\dfrac``/``\\tfrac``, degrees, percent and
dollar signs, thousands separators (``10{,}000``, ``10,\\!000``, ``10,000``), unit words
after a quantity (``85\\text{ feet}``, ``12 square units``), and ``\\text{}`` wrappers
around words (``\\text{(C)}`` -> ``C``), a single-letter left side (``x = 5`` -> ``5``),
and it writes ``.5`` as ``0.5``. It is the identity on anything it does not recognise, so
math-verify still sees the rest as written.

Like everything that looks inside an answer, this runs in the worker pool under the
per-item time limit, so a pattern that backtracks on adversarial input costs at most that.
"""

from __future__ import annotations

import re

# unit words dropped from the end of an answer when they follow a quantity; the short,
# ambiguous ones (m, s, g, in, ...) only inside \text{} / \mbox{}
UNIT_WORDS = (
    r"square",
    r"sq\.?",
    r"cubic",
    r"units?",
    r"inch(?:es)?",
    r"feet",
    r"foot",
    r"ft",
    r"yards?",
    r"miles?",
    r"mph",
    r"met(?:er|re)s?",
    r"(?:kilo|centi|milli)met(?:er|re)s?",
    r"cm",
    r"mm",
    r"km",
    r"grams?",
    r"kg",
    r"gm",
    r"pounds?",
    r"lbs?",
    r"ounces?",
    r"oz",
    r"lit(?:er|re)s?",
    r"gallons?",
    r"seconds?",
    r"minutes?",
    r"hours?",
    r"days?",
    r"weeks?",
    r"months?",
    r"years?",
    r"degrees?",
    r"radians?",
    r"dollars?",
    r"cents?",
    r"percent",
    r"points?",
    r"ways",
    r"students",
    r"people",
    r"teachers",
    r"children",
    r"tickets",
    r"meals",
    r"edges",
    r"digits",
    r"integers",
    r"numbers",
    r"times",
    r"steps",
)
SHORT_UNITS = (r"m", r"s", r"g", r"in", r"mi", r"min", r"sec", r"hr", r"yd", r"h")
_UNIT = "|".join(UNIT_WORDS)
_ANY_UNIT = "|".join(UNIT_WORDS + SHORT_UNITS)
_QUANTITY_END = r"(?:(?<=[\w}).\]])|(?<=\\pi))"
_POWER = r"(?:\^\{?[23]\}?)?"
# "<quantity>\text{ cm}^2", "<quantity>\mbox{ square feet}"
_TEXT_UNITS = re.compile(
    rf"{_QUANTITY_END}\s*\\(?:text|mbox|mathrm|textnormal)\s*\{{\s*"
    rf"(?:(?:{_ANY_UNIT})\b[\s.]*)+\}}{_POWER}\s*$"
)
# "<quantity> square units" (a space before the unit words)
_BARE_UNITS = re.compile(rf"{_QUANTITY_END}\s+(?:(?:{_UNIT})(?![\w\\])[\s.]*)+{_POWER}\s*$")
_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|~|\\quad|\\qquad")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![a-zA-Z])")
_GROUPED_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|,\\!)(?=\d{3})")
_PLAIN_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|textnormal|operatorname)\s*\{")
_CHOICE = re.compile(r"\(?([A-Z])\)?")
# "x = 5" -> "5" (a single-letter left side and one "="; "x+y=2" stays an equation)
_ASSIGNMENT = re.compile(r"^[A-Za-z]\s*=\s*(?=[^=<>]+$)")
_LEADING_DOT = re.compile(r"(?<![\w.])\.(?=\d)")  # .5 -> 0.5
WORD = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]+)*")

_INT = r"\d+"
INT_FRACTION = re.compile(
    rf"(-?)\s*(?:\\frac\s*\{{\s*(-?{_INT})\s*\}}\s*\{{\s*({_INT})\s*\}}|(-?{_INT})\s*/\s*({_INT}))"
)
DECIMAL_FRACTION = re.compile(
    r"-?\s*(?:\\frac\s*\{[\d.\s-]*\}\s*\{[\d.\s]*\}|[\d.-]+\s*/\s*[\d.]+)"
)


def normalize_robust(answer: str) -> str:
    """The answer without notation that carries no mathematical content (see module doc)."""
    text = _strip_wrappers(answer.strip())
    text = (
        text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    )
    text = text.replace("\\displaystyle", "")
    text = _LEFT_RIGHT.sub("", text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\%", "").replace("%", "").replace("\\$", "")
    text = _GROUPED_THOUSANDS.sub("", text)
    text = _SPACING.sub(" ", text).strip()
    text = _TEXT_UNITS.sub("", text)
    text = _BARE_UNITS.sub("", text).strip()
    if _PLAIN_THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    text = _unwrap_text(text).strip()
    text = _ASSIGNMENT.sub("", text)
    choice = _CHOICE.fullmatch(text)
    if choice:  # (C) -> C
        text = choice.group(1)
    text = re.sub(r"\s+", " ", text).strip().rstrip(".").rstrip()
    return _LEADING_DOT.sub("0.", text)


def _strip_wrappers(text: str) -> str:
    """Remove math delimiters and a box around the whole answer, repeatedly."""
    while True:
        before = text
        for left, right in _DELIMITERS:
            if (
                len(text) >= len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
            ):
                text = text[len(left) : -len(right)].strip()
        for box in ("\\boxed{", "\\fbox{"):
            if text.startswith(box) and text.endswith("}") and _closes_at_end(text, len(box) - 1):
                text = text[len(box) : -1].strip()
        if text == before:
            return text


def _closes_at_end(text: str, brace: int) -> bool:
    """Whether the brace opened at ``brace`` is closed by the last character."""
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i == len(text) - 1
    return False


def _unwrap_text(text: str) -> str:
    """``\\text{odd}`` -> ``odd``, ``19\\text{ and }43`` -> ``19 , 43``: text as plain words."""
    out, i = [], 0
    for match in _TEXT_COMMAND.finditer(text):
        if match.start() < i:
            continue
        depth, j = 1, match.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            break
        inner = text[match.end() : j - 1]
        out.append(text[i : match.start()])
        out.append(" , " if inner.strip() in ("and", "or", ",") else inner)
        i = j
    out.append(text[i:])
    return "".join(out)


def int_fraction(text: str) -> tuple[int, int] | None:
    """``-\\frac{6}{8}`` -> (-6, 8) as written (not reduced); None if not an integer ratio."""
    match = INT_FRACTION.fullmatch(text.strip())
    if not match:
        return None
    sign, num1, den1, num2, den2 = match.groups()
    num, den = int(num1 or num2), int(den1 or den2)
    if den == 0:
        return None
    return (-num if sign else num), den


def is_decimal_fraction(text: str) -> bool:
    """A ratio of numbers with a decimal point in it, such as ``\\frac{31.95}{2}``."""
    return bool(DECIMAL_FRACTION.fullmatch(text.strip())) and "." in text
