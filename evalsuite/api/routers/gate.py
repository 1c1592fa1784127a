"""``POST /v1/gate``: the regression gate of ``evalsuite gate`` run inside the service.

The gate reads runs, scores and samples through the same handlers that serve
``GET /v1/runs/{run}``, ``GET /v1/checkpoints/{id}`` and ``.../samples``, in-process on the
request's session, so the report equals what ``evalsuite gate --api`` computes over HTTP.
A run that does not exist is a 404; every other refusal is a report with status
``cannot_decide`` (exit_code 2), as the CLI gives.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from evalsuite.api.deps import ReadSession
from evalsuite.api.routers import checkpoints, runs
from evalsuite.gate.cli import ApiSource, GateInputError, GateReport, GateSettings, gate

router = APIRouter(tags=["gate"])
Name = Annotated[str, Field(min_length=1, max_length=512)]


class GateCheck(BaseModel):
    task: Name
    metric: Name


class GateIn(BaseModel):
    candidate: Name = Field(description="RUN, RUN@last, RUN@best or RUN@EPOCH")
    baseline: Name = Field(description="RUN, RUN@last, RUN@best or RUN@EPOCH")
    checks: list[GateCheck] | None = Field(
        None, max_length=100, description="(task, metric) pairs; default: the paper's metrics"
    )
    max_drop: float = Field(1.0, ge=0, le=100, description="tolerated drop in points")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="one-sided significance level")
    n_boot: int = Field(10_000, ge=1, le=100_000)
    seed: int = Field(0, ge=0, le=2**63 - 1)


class SessionReader:
    """The ApiClient read methods the gate uses, answered by the handlers themselves."""

    def __init__(self, session: Session):
        self.session = session

    def get_run(self, name: str) -> dict[str, Any]:
        return runs.get_run(name, self.session).model_dump(mode="json")

    def get_checkpoint(self, checkpoint_id: int) -> dict[str, Any]:
        return checkpoints.get_checkpoint(checkpoint_id, self.session).model_dump(mode="json")

    def samples(
        self,
        checkpoint_id: int,
        task: str | None = None,
        failing: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        page = checkpoints.get_samples(checkpoint_id, self.session, task, failing, limit, offset)
        return page.model_dump(mode="json")

    def list_jobs(self, status=None, run=None, limit=100) -> list[dict[str, Any]]:
        raise NotImplementedError("the service's gate does not wait for jobs")


@router.post("/gate")
def post_gate(body: GateIn, session: ReadSession) -> dict[str, Any]:
    """The gate's report (``evalsuite gate --json``): status, exit_code, reasons, checks."""
    reader = SessionReader(session)
    settings = GateSettings(body.max_drop, body.alpha, body.n_boot, body.seed)
    try:  # NotFound (an unknown run) passes on: the app answers 404
        candidate = ApiSource(reader, body.candidate, "candidate")
        baseline = ApiSource(reader, body.baseline, "baseline")
    except GateInputError as e:
        return GateReport(body.candidate, body.baseline, settings, [], [str(e)]).as_dict()
    tasks = [c.task for c in body.checks] if body.checks else None
    metrics = [c.metric for c in body.checks] if body.checks else None
    return gate(candidate, baseline, tasks, metrics, settings).as_dict()
