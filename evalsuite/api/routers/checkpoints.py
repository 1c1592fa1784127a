"""One checkpoint with its scores and jobs, and its per-sample records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select

from evalsuite.api import convert
from evalsuite.api.auth import require_run
from evalsuite.api.deps import Caller, ReadSession, WriteSession
from evalsuite.api.schemas import (
    INT64,
    Checkpoint,
    CheckpointDetail,
    Sample,
    SamplePage,
    Score,
)
from evalsuite.store import catalog, models

router = APIRouter(tags=["checkpoints"])
CheckpointId = Annotated[int, Path(ge=1, le=INT64)]


@router.get("/checkpoints/{checkpoint_id}", response_model=CheckpointDetail)
def get_checkpoint(checkpoint_id: CheckpointId, session: ReadSession) -> CheckpointDetail:
    row = catalog.get_checkpoint(session, checkpoint_id)
    scores = session.scalars(
        select(models.Score)
        .where(models.Score.checkpoint_id == row.id)
        .order_by(models.Score.task, models.Score.metric, models.Score.id)
    )
    jobs = session.scalars(
        select(models.Job).where(models.Job.checkpoint_id == row.id).order_by(models.Job.id)
    )
    return CheckpointDetail(
        **convert.checkpoint(row).model_dump(),
        scores=[Score.model_validate(s) for s in scores],
        jobs=[convert.job(j) for j in jobs],
    )


@router.post("/checkpoints/{checkpoint_id}/final", response_model=Checkpoint)
def mark_final(checkpoint_id: CheckpointId, session: WriteSession, caller: Caller) -> Checkpoint:
    """Mark a registered checkpoint its run's final one (LAST); the run's other checkpoints
    lose the mark. Idempotent; the base (epoch 0) is a 409; a run outside the token's
    scope, a 403."""
    require_run(caller, catalog.get_checkpoint(session, checkpoint_id).run.name)
    return convert.checkpoint(catalog.mark_final(session, checkpoint_id))


@router.get("/checkpoints/{checkpoint_id}/samples", response_model=SamplePage)
def get_samples(
    checkpoint_id: CheckpointId,
    session: ReadSession,
    task: Annotated[str | None, Query(max_length=256)] = None,
    failing: Annotated[bool, Query(description="only samples judged wrong")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64)] = 0,
    doc_id: Annotated[str | None, Query(max_length=1024, description="one document")] = None,
) -> SamplePage:
    catalog.get_checkpoint(session, checkpoint_id)
    where = [models.Sample.checkpoint_id == checkpoint_id]
    if task:
        where.append(models.Sample.task == task)
    if doc_id is not None:
        where.append(models.Sample.doc_id == doc_id)
    if failing:
        where.append(models.Sample.correct.is_(False))
    total = session.scalar(select(func.count()).select_from(models.Sample).where(*where)) or 0
    rows = session.scalars(
        select(models.Sample).where(*where).order_by(models.Sample.id).limit(limit).offset(offset)
    )
    return SamplePage(total=total, items=[_sample(r) for r in rows])


def _sample(row: models.Sample) -> Sample:
    sample = Sample.model_validate(row)
    sample.record = convert.free_form(sample.record, "samples row")
    return sample
