"""Scoring of generations: MATH answer extraction and equivalence (paper and robust modes).

Everything that can run long (sympy, math-verify; later generated code) runs in
``pool.KillingPool``, which enforces each task's time limit by killing its worker process.

    from evalsuite.scoring import grade_math
    report = grade_math([{"prediction": "... The answer is: 5", "gold": "5"}], mode="both")

Names are imported on first use, so ``evalsuite.scoring.pool`` does not pull in sympy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ScoringError": "evalsuite.scoring.errors",
    "MathItem": "evalsuite.scoring.math.items",
    "read_predictions": "evalsuite.scoring.math.items",
    "MathReport": "evalsuite.scoring.math.grade",
    "MathSample": "evalsuite.scoring.math.grade",
    "grade_math": "evalsuite.scoring.math.grade",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
