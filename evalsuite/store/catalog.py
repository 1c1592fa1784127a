"""Runs and checkpoints: registering them (idempotently) and enqueueing one job per suite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evalsuite.base_epoch import BASE_EPOCH
from evalsuite.protocol import forgetting, paper_tables
from evalsuite.store.errors import Conflict, NotFound
from evalsuite.store.models import BaseModel, Checkpoint, Job, JobStatus, Run

# a run of a domain is evaluated on its table's suite and the forgetting suite by default
DEFAULT_SUITES = {domain: [domain, forgetting().task] for domain in paper_tables()}
RUN_FIELDS = (
    "method",
    "r",
    "k",
    "alpha",
    "domain",
    "trainable_params",
    "extra_params",
    "train_time_s",
)


def base_model(session: Session, name: str, path: str | None) -> BaseModel:
    """The base model called ``name``, created on first use.

    The path is the base model's, shared by all its runs (a worker of any of them loads it
    from there), so a run cannot change it: a different path is a 409 naming both. A base
    stored without a path takes the first one a run gives.
    """
    found = session.scalar(select(BaseModel).where(BaseModel.name == name))
    if found is None:
        found = BaseModel(name=name, path=path)
        session.add(found)
        session.flush()
    elif path and found.path and path != found.path:
        raise Conflict(
            f"base model {name!r} is stored with base_model_path {found.path!r}, not "
            f"{path!r}; every run of a base model shares its path: send {found.path!r} (or "
            "leave base_model_path out), or register these weights under another base_model "
            "name"
        )
    elif path and not found.path:
        found.path = path
    return found


def get_run(session: Session, name: str) -> Run:
    run = session.scalar(select(Run).where(Run.name == name))
    if run is None:
        raise NotFound(f"no run named {name!r}; register it first with POST /v1/runs")
    return run


def register_run(session: Session, fields: dict[str, Any]) -> tuple[Run, bool]:
    """Store a run; returns (run, created). The same name with other fields is a conflict."""
    existing = session.scalar(select(Run).where(Run.name == fields["name"]))
    if existing is not None:
        differing = [f for f in RUN_FIELDS if getattr(existing, f) != fields.get(f)]
        if existing.base_model.name != fields["base_model"]:
            differing.append("base_model")
        if existing.meta != (fields.get("metadata") or {}):
            differing.append("metadata")
        if differing:
            raise Conflict(
                f"run {fields['name']!r} is already stored with other values for "
                f"{', '.join(differing)}; register the new run under another name"
            )
        base_model(session, fields["base_model"], fields.get("base_model_path"))  # 409 if other
        return existing, False
    base = base_model(session, fields["base_model"], fields.get("base_model_path"))
    run = Run(
        name=fields["name"],
        base_model=base,
        meta=fields.get("metadata") or {},
        **{f: fields.get(f) for f in RUN_FIELDS},
    )
    session.add(run)
    session.flush()
    return run, True


def list_runs(
    session: Session, domain: str | None, base_model_name: str | None, method: str | None
) -> list[Run]:
    query = select(Run).join(Run.base_model).order_by(Run.id)
    if domain:
        query = query.where(Run.domain == domain)
    if base_model_name:
        query = query.where(BaseModel.name == base_model_name)
    if method:
        query = query.where(Run.method == method)
    return list(session.scalars(query))


@dataclass
class Registered:
    checkpoint: Checkpoint
    jobs: list[Job]
    created: bool


def register_checkpoint(
    session: Session,
    run_name: str,
    fields: dict[str, Any],
    max_attempts: int,
    registered_by: str | None = None,
) -> Registered:
    """Store a checkpoint and enqueue one PENDING job per suite; the same sha256 again: no-op
    (the first registration's ``registered_by``, the token label, stays)."""
    run = get_run(session, run_name)
    existing = session.scalar(
        select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.sha256 == fields["sha256"])
    )
    if existing is not None:
        jobs = list(session.scalars(select(Job).where(Job.checkpoint_id == existing.id)))
        return Registered(existing, jobs, created=False)
    checkpoint = Checkpoint(
        run=run,
        epoch=fields["epoch"],
        step=fields.get("step"),
        uri=fields["uri"],
        sha256=fields["sha256"],
        final=bool(fields.get("final")),
        registered_by=registered_by,
    )
    session.add(checkpoint)
    suites = fields.get("suites") or DEFAULT_SUITES.get(run.domain, [forgetting().task])
    jobs = [
        Job(
            checkpoint=checkpoint,
            suite=suite,
            status=JobStatus.PENDING,
            attempts=0,
            max_attempts=max_attempts,
            options=fields.get("options") or {},
        )
        for suite in dict.fromkeys(suites)
    ]
    session.add_all(jobs)
    session.flush()
    return Registered(checkpoint, jobs, created=True)


def get_checkpoint(session: Session, checkpoint_id: int) -> Checkpoint:
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise NotFound(f"no checkpoint with id {checkpoint_id}; list a run's with GET /v1/runs/RUN")
    return checkpoint


def mark_final(session: Session, checkpoint_id: int) -> Checkpoint:
    """Make ``checkpoint_id`` its run's one final checkpoint (LAST); idempotent.

    Registration dedupes on (run, sha256) and keeps the first ``final`` it was given, so a
    training job that learns which epoch was the last only after registering it needs this.
    Any other checkpoint of the run loses the mark: LAST is one checkpoint. The base (epoch 0)
    is never LAST, so marking it is refused rather than silently ignored.
    """
    checkpoint = get_checkpoint(session, checkpoint_id)
    if checkpoint.epoch <= BASE_EPOCH:
        raise Conflict(
            f"checkpoint {checkpoint_id} is run {checkpoint.run.name!r}'s base model (epoch 0), "
            "which is never LAST; mark one of its trained checkpoints final instead"
        )
    others = select(Checkpoint).where(
        Checkpoint.run_id == checkpoint.run_id,
        Checkpoint.final.is_(True),
        Checkpoint.id != checkpoint.id,
    )
    for other in session.scalars(others):
        other.final = False
    checkpoint.final = True
    session.flush()
    return checkpoint
