"""``GET /v1/compare``: ``evalsuite compare`` inside the service.

Both sides are checkpoint ids or ``RUN@best|@last|@EPOCH`` (never server paths), read through
the same in-process handlers the gate uses, so the report equals what ``evalsuite compare
--api`` computes over HTTP. An unknown run or checkpoint is a 404; every other refusal is in
the report (``reasons``, or a task's ``reason``), as the CLI gives it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from evalsuite.api.deps import ReadSession
from evalsuite.api.routers.gate import SessionReader
from evalsuite.compare.flips import compare, empty_report
from evalsuite.compare.sources import open_side
from evalsuite.gate.compare import GateSettings
from evalsuite.gate.evidence import GateInputError

router = APIRouter(tags=["compare"])
Ref = Annotated[
    str,
    Query(min_length=1, max_length=512, description="checkpoint id, or RUN[@best|@last|@EPOCH]"),
]


@router.get("/compare")
def get_compare(
    a: Ref,
    b: Ref,
    session: ReadSession,
    task: Annotated[list[str] | None, Query(max_length=100)] = None,
    alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05,
    n_boot: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    seed: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> dict[str, Any]:
    """Per task: the flipped documents (``lost``, ``gained``) with their values, counts, and
    each metric's ``b - a`` with the gate's paired bootstrap interval."""
    reader = SessionReader(session)
    settings = GateSettings(alpha=alpha, n_boot=n_boot, seed=seed)
    try:  # NotFound (an unknown run or checkpoint) passes on: the app answers 404
        side_a = open_side(a, "a", reader, allow_dirs=False)
        side_b = open_side(b, "b", reader, allow_dirs=False)
    except GateInputError as e:
        return empty_report(a, b, settings, str(e))
    return compare(side_a, side_b, task, settings)
