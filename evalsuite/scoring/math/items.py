"""Rows to grade: ``MathItem`` and the JSONL reader, with errors that name file and line.

A row has ``prediction`` (the model's whole response) and either ``gold`` (a final answer)
or ``solution`` (a reference solution whose last ``\\boxed{}`` is the answer), plus
optional ``id`` (default: its line number), ``subject`` (or MATH's ``type``) and ``level``.
Anything else in the row is ignored, so generation records can be graded as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.scoring.errors import ScoringError
from evalsuite.scoring.math.extract import last_boxed_content


@dataclass(frozen=True, slots=True)
class MathItem:
    """One response to grade against one gold final answer."""

    id: Any
    prediction: str
    gold: str
    subject: str | None = None
    level: str | None = None


def level_name(level: Any) -> str | None:
    """MATH says ``Level 3``, MATH-500 says ``3``: both become ``Level 3``."""
    if level is None or level == "":
        return None
    if isinstance(level, int) or (isinstance(level, str) and level.strip().isdigit()):
        return f"Level {int(level)}"
    return str(level)


def item_from_row(row: Any, where: str, default_id: Any) -> MathItem:
    """Check one row and turn it into a MathItem; ``where`` (file:line) prefixes errors."""
    if isinstance(row, MathItem):
        return row
    if not isinstance(row, Mapping):
        raise ScoringError(f"{where}: expected a JSON object, got {type(row).__name__}")
    prediction = row.get("prediction")
    if not isinstance(prediction, str):
        what = "no 'prediction'" if prediction is None else "'prediction' is not a string"
        raise ScoringError(f"{where}: {what}; each row needs the model's response as a string")
    gold = row.get("gold")
    if gold is None:
        solution = row.get("solution")
        if solution is None:
            raise ScoringError(
                f"{where}: neither 'gold' (a final answer) nor 'solution' "
                "(a reference solution with \\boxed{...}); add one of them"
            )
        if not isinstance(solution, str):
            raise ScoringError(f"{where}: 'solution' is not a string")
        gold = last_boxed_content(solution)
        if gold is None:
            raise ScoringError(
                f"{where}: 'solution' has no complete \\boxed{{...}} answer; "
                "give the final answer as 'gold' instead"
            )
    elif isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise ScoringError(f"{where}: 'gold' must be a string (a final answer)")
    subject = row.get("subject", row.get("type"))
    return MathItem(
        id=row.get("id", default_id),
        prediction=prediction,
        gold=str(gold),
        subject=None if subject is None else str(subject),
        level=level_name(row.get("level")),
    )


def read_predictions(path: Path) -> list[MathItem]:
    """Every non-blank line of a JSONL file as a MathItem (id defaults to the line number)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScoringError(f"{path}: no such file; pass the JSONL file of predictions") from None
    except OSError as e:
        raise ScoringError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ScoringError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScoringError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        items.append(item_from_row(row, where, default_id=number))
    if not items:
        raise ScoringError(f"{path}: no predictions (the file is empty)")
    return items
