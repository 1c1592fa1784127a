"""Table rows to response bodies (the names the contract uses, not the column names).

Free-form JSON (run metadata, job options, samples rows) passes through
:func:`evalsuite.api.jsondepth.readable`: a value stored before the API refused deep JSON
would otherwise make every read that includes it a 500.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from evalsuite.api import schemas
from evalsuite.api.jsondepth import readable
from evalsuite.results_schema import AdapterAnalysis
from evalsuite.settings import JSON_DEPTH_CEILING
from evalsuite.store import models


def free_form(value: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """A stored JSON object as the response can carry it (``{}`` for none)."""
    return readable(value or {}, JSON_DEPTH_CEILING, what)


def run(row: models.Run) -> schemas.Run:
    return schemas.Run(
        id=row.id,
        name=row.name,
        method=row.method,
        r=row.r,
        k=row.k,
        alpha=row.alpha,
        domain=row.domain,
        base_model=row.base_model.name,
        base_model_path=row.base_model.path,
        trainable_params=row.trainable_params,
        extra_params=row.extra_params,
        train_time_s=row.train_time_s,
        metadata=free_form(row.meta, "run's metadata"),
        created_at=row.created_at,
    )


def checkpoint(row: models.Checkpoint) -> schemas.Checkpoint:
    return schemas.Checkpoint(
        id=row.id,
        run=row.run.name,
        epoch=row.epoch,
        step=row.step,
        uri=row.uri,
        sha256=row.sha256,
        final=row.final,
        created_at=row.created_at,
        analysis=analysis(row.analysis),
        registered_by=row.registered_by,
    )


def analysis(value: dict[str, Any] | None) -> AdapterAnalysis | None:
    """The stored adapter analysis; one another version stored in another shape reads as a
    note instead of failing the read."""
    if value is None:
        return None
    try:
        return AdapterAnalysis.model_validate(value)
    except ValidationError as e:
        return AdapterAnalysis(
            kind=str(value.get("kind", "unknown")),
            note=f"the stored analysis cannot be read by this version ({e.error_count()} "
            "problem(s)); evaluate the checkpoint again to replace it",
        )


def _job_fields(row: models.Job) -> dict:
    return {
        "id": row.id,
        "checkpoint_id": row.checkpoint_id,
        "run": row.checkpoint.run.name,
        "epoch": row.checkpoint.epoch,
        "suite": row.suite,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "worker_id": row.worker_id,
        "lease_expires_at": row.lease_expires_at,
        "error": row.error,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def job(row: models.Job) -> schemas.Job:
    return schemas.Job(**_job_fields(row))


def job_claim(row: models.Job) -> schemas.JobClaim:
    ckpt = row.checkpoint
    return schemas.JobClaim(
        **_job_fields(row),
        checkpoint_uri=ckpt.uri,
        checkpoint_sha256=ckpt.sha256,
        base_model=ckpt.run.base_model.name,
        base_model_path=ckpt.run.base_model.path,
        options=free_form(row.options, "job's options"),
    )
