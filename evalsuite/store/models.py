"""Tables of the store: base models, runs, checkpoints, the job queue, scores and samples.

The results directory is the unit of truth for one evaluation; these tables index it so that
BEST/LAST, the paper's tables and curves are single SQL queries. Changes here need an Alembic
revision in ``evalsuite/store/migrations/versions``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from evalsuite.tokens import LABEL_MAX


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        # SQLite compares the stored text, so every value is written in one (naive UTC) form
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


class Base(DeclarativeBase):
    pass


class BaseModel(Base):
    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    method: Mapped[str] = mapped_column(String(64), index=True)
    r: Mapped[int | None] = mapped_column(Integer)
    k: Mapped[int | None] = mapped_column(Integer)
    alpha: Mapped[float | None] = mapped_column(Float)
    domain: Mapped[str] = mapped_column(String(16), index=True)
    base_model_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    trainable_params: Mapped[int | None] = mapped_column(BigInteger)
    extra_params: Mapped[int | None] = mapped_column(BigInteger)
    train_time_s: Mapped[float | None] = mapped_column(Float)
    # "metadata" is reserved on declarative classes, so the attribute has another name
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    base_model: Mapped[BaseModel] = relationship(lazy="joined")
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", order_by="Checkpoint.epoch"
    )


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "sha256", name="uq_checkpoints_run_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[float] = mapped_column(Float)
    step: Mapped[int | None] = mapped_column(BigInteger)
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(128))
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # results.json's adapter_analysis (an AdapterAnalysis), from the checkpoint's first
    # completed job that carried one; null until then and for the base
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # the label of the API token that registered it (its name, else its sha256 fingerprint;
    # never the secret): evalsuite.tokens. Null for checkpoints stored before revision 0003.
    registered_by: Mapped[str | None] = mapped_column(String(LABEL_MAX), nullable=True)

    run: Mapped[Run] = relationship(back_populates="checkpoints", lazy="joined")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "suite", name="uq_jobs_checkpoint_suite"),
        # the claim scans PENDING jobs in id order; expiry scans RUNNING jobs by lease
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True
    )
    suite: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    checkpoint: Mapped[Checkpoint] = relationship(lazy="joined")


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (
        # one copy per job: completing twice cannot duplicate a score
        UniqueConstraint("job_id", "task", "metric", name="uq_scores_job_task_metric"),
        # leaderboard / tables / curves: one task and metric, non-partial, across checkpoints
        Index("ix_scores_task_metric", "task", "metric", "partial", "checkpoint_id", "value"),
        Index("ix_scores_checkpoint", "checkpoint_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(256))
    metric: Mapped[str] = mapped_column(String(256))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(BigInteger)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    config_hash: Mapped[str] = mapped_column(String(64))
    materialization: Mapped[str | None] = mapped_column(String(32))
    dtype: Mapped[str | None] = mapped_column(String(32))
    engine: Mapped[str | None] = mapped_column(String(64))
    engine_version: Mapped[str | None] = mapped_column(String(64))
    # where the engine computed (cpu, cuda, ...); null for scores stored before revision 0005,
    # which ran on the CPU (comparable.DEFAULT_PLATFORM)
    platform: Mapped[str | None] = mapped_column(String(32))
    data_sha256: Mapped[str | None] = mapped_column(String(128))
    prompt_sha256: Mapped[str | None] = mapped_column(String(128))
    # how the task's generated programs were confined: namespaces (the jail) or basic (the
    # fallback, allowed by --allow-basic-sandbox); null for tasks that run no generated code
    # and for scores stored before revision 0004
    sandbox: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        Index("ix_samples_checkpoint_task", "checkpoint_id", "task", "correct"),
        Index("ix_samples_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(256))
    doc_id: Mapped[str] = mapped_column(Text)
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
