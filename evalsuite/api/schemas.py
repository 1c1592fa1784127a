"""Request and response bodies of the API (docs/api.md), kept apart from the table models.

Bounds on every field match what the database can hold (32/64-bit integers, no NUL in text),
so a request the schema accepts never turns into a database error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from evalsuite.evaluation.options import JobOptions
from evalsuite.results_schema import (
    INT32,
    NO_NUL,
    AdapterAnalysis,
    Count,
    ResultsFile,
    SampleRow,
)
from evalsuite.results_schema import INT64 as INT64  # the routers' id bounds
from evalsuite.results_schema import Name as TaskName

Name = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=NO_NUL)]
# a run name is one URL path segment
RunName = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00/]*$")]
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
SuiteName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
WorkerId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
Text = Annotated[str, StringConstraints(max_length=100_000, pattern=NO_NUL)]
Sha = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
Rank = Annotated[int, Field(ge=0, le=INT32)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
LeaseSeconds = Annotated[float, Field(gt=0, le=7 * 86400, allow_inf_nan=False)]
Domain = Literal["code", "math"]
Status = Literal["PENDING", "RUNNING", "FINISHED", "FAILED"]


class RunIn(BaseModel):
    name: RunName
    method: ShortName
    r: Rank | None = None
    k: Rank | None = None
    alpha: Finite | None = None
    domain: Domain
    base_model: Name
    base_model_path: Text | None = None
    trainable_params: Count | None = None
    extra_params: Count | None = None
    train_time_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CheckpointIn(BaseModel):
    epoch: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
    step: Count | None = None
    uri: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]
    sha256: Sha
    final: bool = False
    suites: Annotated[list[SuiteName], Field(min_length=1, max_length=32)] | None = None
    options: JobOptions = Field(
        default_factory=JobOptions,
        description="evaluation options handed to the worker with each job, e.g. {'limit': 5}",
    )


class Checkpoint(BaseModel):
    id: int
    run: str
    epoch: float
    step: int | None
    uri: str
    sha256: str
    final: bool
    created_at: datetime
    analysis: AdapterAnalysis | None = Field(
        None,
        description="the adapter's update per module type, computed by the worker "
        "(results.json's adapter_analysis); null until a job completed, and for the base",
    )
    registered_by: str | None = Field(
        None,
        description="the API token that registered it: the token file's name=, else "
        "'sha256:' and the first 8 hex digits of the token's SHA-256 (never the token); null "
        "for checkpoints stored before this was recorded",
    )


class Run(BaseModel):
    id: int
    name: str
    method: str
    r: int | None
    k: int | None
    alpha: float | None
    domain: str
    base_model: str
    base_model_path: str | None
    trainable_params: int | None
    extra_params: int | None
    train_time_s: float | None
    metadata: dict[str, Any]
    created_at: datetime


class RunDetail(Run):
    checkpoints: list[Checkpoint]


class Job(BaseModel):
    id: int
    checkpoint_id: int
    run: str
    epoch: float
    suite: str
    status: Status
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobClaim(Job):
    checkpoint_uri: str
    checkpoint_sha256: str
    base_model: str
    base_model_path: str | None
    options: dict[str, Any] = Field(
        description="the JobOptions given at registration (the worker checks them again)"
    )


class Registered(BaseModel):
    checkpoint: Checkpoint
    jobs: list[Job]


class Score(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task: str
    metric: str
    value: float
    stderr: float | None
    n: int | None
    partial: bool
    config_hash: str
    materialization: str | None
    dtype: str | None
    engine: str | None
    engine_version: str | None
    platform: str | None = Field(
        None,
        description="where the engine computed: cpu, cuda, rocm...; null for scores stored "
        "before this was recorded (they ran on the CPU)",
    )
    data_sha256: str | None
    prompt_sha256: str | None
    sandbox: str | None = Field(
        None,
        description="tasks that run generated code (HumanEval+): namespaces (the bubblewrap "
        "jail) or basic (the weak fallback, allowed by the worker's --allow-basic-sandbox); "
        "null for other tasks and for scores stored before this was recorded",
    )


class CheckpointDetail(Checkpoint):
    scores: list[Score]
    jobs: list[Job]


class Sample(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    task: str
    doc_id: str
    sample_index: int
    correct: bool | None
    score: float | None
    record: dict[str, Any]


class SamplePage(BaseModel):
    total: int
    items: list[Sample]


class ClaimIn(BaseModel):
    worker_id: WorkerId
    lease_s: LeaseSeconds = 600.0


class HeartbeatIn(BaseModel):
    worker_id: WorkerId
    lease_s: LeaseSeconds = 600.0


class CompleteIn(BaseModel):
    worker_id: WorkerId
    results: ResultsFile = Field(description="the runner's results.json (docs/results.md)")
    samples: dict[TaskName, list[SampleRow]] = Field(
        default_factory=dict, description="task name -> the rows of its samples_<task>.jsonl"
    )


class FailIn(BaseModel):
    worker_id: WorkerId
    error: Text


class ReleaseIn(BaseModel):
    worker_id: WorkerId


class LeaderboardRow(BaseModel):
    run: str
    method: str
    r: int | None
    k: int | None
    base_model: str
    best: float
    best_epoch: float
    last: float
    last_epoch: float
    n_epochs: int


class Column(BaseModel):
    key: str
    label: str


class TableRow(BaseModel):
    r: int | None
    method: str
    run: str
    cells: dict[str, dict[str, Any]] = Field(
        description="base model -> {run, train_time_s, <metric>_best, <metric>_last, "
        "trainable_params, extra_params}"
    )


class TableData(BaseModel):
    domain: Domain
    base_models: list[str]
    columns: list[Column]
    rows: list[TableRow]
    emphasis: dict[str, dict[str, dict[str, list[str]]]]  # base -> bold/italic -> key -> runs


class CurvePoint(BaseModel):
    epoch: float
    value: float
    checkpoint_id: int
    stderr: float | None = None


class Curve(BaseModel):
    run: str
    best_epoch: float | None
    points: list[CurvePoint]


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["sqlite", "postgresql"]
    version: str
    pending_jobs: int
