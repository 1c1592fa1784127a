"""The paper's bold and italic marks in Tables 1-2: one rule, used by the API and dashboard.

For one score column of one base model: **bold** marks the best value over all rows,
*italic* the best within one rank (LoRA-family methods at the same r). Every tied best is
marked, as the paper does. A bold cell is not also italic (the paper sets it bold). Italic
needs at least two measured rows in the rank: a lone row (VeRA at its own r, full
fine-tuning) would otherwise be italic by default. Missing values never compete.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

BOLD, ITALIC = "bold", "italic"


def _best(rows: Sequence[int], value: Callable[[int], float | None]) -> list[int]:
    present = [(v, i) for i in rows if (v := value(i)) is not None]
    if not present:
        return []
    top = max(v for v, _ in present)
    return [i for v, i in present if v == top]


def column_marks(
    rows: Sequence[int], rank: Callable[[int], Hashable], value: Callable[[int], float | None]
) -> dict[int, str]:
    """``{row: BOLD | ITALIC}`` for one column: ``rows`` are the competing row indices."""
    marks = dict.fromkeys(_best(rows, value), BOLD)
    groups: dict[Hashable, list[int]] = {}
    for i in rows:
        groups.setdefault(rank(i), []).append(i)
    for group in groups.values():
        if len([i for i in group if value(i) is not None]) >= 2:
            for i in _best(group, value):
                marks.setdefault(i, ITALIC)
    return marks
