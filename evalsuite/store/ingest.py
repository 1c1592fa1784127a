"""Turn a validated ``results.json`` and its samples rows into score and sample rows.

Their shape is checked before they get here, by the models of
:mod:`evalsuite.results_schema` (the API answers a malformed upload with a 422 that names the
field). What is left is what a results file may hold but a score row may not:

- a metric value that is not a finite number (NaN when a task scored no document) is refused,
  since a score without a value would rank as anything;
- a descriptive string (engine, dtype, a hash) longer than its column is stored as null: a
  label the table cannot hold is no reason to refuse the scores, and results.json keeps it.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from evalsuite.comparable import DEFAULT_PLATFORM, comparability_hash
from evalsuite.protocol import forgetting
from evalsuite.results_schema import ResultsFile, SampleRow
from evalsuite.store.db import json_dumps
from evalsuite.store.errors import BadInput
from evalsuite.store.models import Job, Score

AGGREGATE_TASK = forgetting().task  # aggregates are stored under their suite's name
SAMPLE_COLUMNS = (
    "checkpoint_id",
    "job_id",
    "task",
    "doc_id",
    "sample_index",
    "correct",
    "score",
    "record",
)


def _fits(value: str | None, column: str) -> str | None:
    """``value`` when the score column of that name can hold it, else None."""
    length = Score.__table__.c[column].type.length
    if value is None or "\x00" in value or (length is not None and len(value) > length):
        return None
    return value


def _finite(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise BadInput(
            f"{where} is {value}, not a number that can be stored (NaN: the task scored no "
            "document); rerun the task on its documents, or leave it out of the results"
        )
    return value


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def score_rows(job: Job, results: ResultsFile) -> list[dict[str, Any]]:
    """One row per (task, metric) of ``results.json``; aggregates as task ``forgetting``."""
    # hashed as read (exclude_unset): the same dicts the gate hashes from the file
    model = results.model.model_dump(mode="json", exclude_unset=True)
    engine = results.model.engine
    common = {
        "checkpoint_id": job.checkpoint_id,
        "job_id": job.id,
        "materialization": _fits(results.model.materialization, "materialization"),
        "dtype": _fits(results.model.dtype, "dtype"),
        "engine": _fits(engine.name, "engine"),
        "engine_version": _fits(engine.version, "engine_version"),
        "platform": _fits(engine.platform or DEFAULT_PLATFORM, "platform"),
    }
    rows: list[dict[str, Any]] = []
    for task, result in results.tasks.items():
        config_hash = comparability_hash(
            result.config.model_dump(mode="json", exclude_unset=True), model
        )
        for metric, m in result.metrics.items():
            rows.append(
                {
                    **common,
                    "task": task,
                    "metric": metric,
                    "value": _finite(m.value, f"results.tasks.{task}.metrics.{metric}.value"),
                    "stderr": _finite_or_none(m.stderr),
                    "n": m.n,
                    "partial": result.partial,
                    "config_hash": config_hash,
                    "data_sha256": _fits(result.config.data_sha256, "data_sha256"),
                    "prompt_sha256": _fits(result.config.prompt_sha256, "prompt_sha256"),
                    "sandbox": result.sandbox.isolation if result.sandbox else None,
                }
            )
    for name, agg in results.aggregates.items():
        rows.append(
            {
                **common,
                "task": AGGREGATE_TASK,
                "metric": name,
                "value": _finite(agg.value, f"results.aggregates.{name}.value"),
                "stderr": None,
                "n": None,
                "partial": agg.partial,
                "config_hash": comparability_hash(agg.metrics, model),
                "data_sha256": None,
                "prompt_sha256": None,
                "sandbox": None,
            }
        )
    return rows


def sample_rows(job: Job, samples: dict[str, list[SampleRow]]) -> list[dict[str, Any]]:
    """One row per samples-file line: doc id, sample index, verdict, score and the whole row
    as it was sent (``record``, with the scorer's own fields)."""
    return [
        {
            "checkpoint_id": job.checkpoint_id,
            "job_id": job.id,
            "task": task,
            "doc_id": row.doc_id,
            "sample_index": row.sample_index,
            "correct": row.verdict,
            "score": _finite_or_none(row.score),
            "record": row.model_dump(mode="json", exclude_unset=True),
        }
        for task, records in samples.items()
        for row in records
    ]


def store_results(
    session: Session,
    job: Job,
    results: ResultsFile,
    samples: dict[str, list[SampleRow]],
) -> tuple[int, int]:
    """Insert the job's scores and samples in the caller's transaction, and keep the adapter
    analysis with the checkpoint (every suite's job computes the same one: the first with a
    summary is kept, a note only until one comes); returns the counts."""
    analysis, stored = results.adapter_analysis, job.checkpoint.analysis
    if analysis is not None and (stored is None or (analysis.by_type and not stored["by_type"])):
        job.checkpoint.analysis = analysis.model_dump(mode="json")
    scores = score_rows(job, results)
    rows = sample_rows(job, samples)
    if scores:
        session.execute(insert(Score), scores)
    if rows:
        _bulk_insert_samples(session, rows)
    return len(scores), len(rows)


def _bulk_insert_samples(session: Session, rows: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL, one executemany on SQLite: a job brings ~10^4 rows, and the ORM's
    per-row work would cost more than the database's."""
    values = [(*(row[c] for c in SAMPLE_COLUMNS[:-1]), json_dumps(row["record"])) for row in rows]
    columns = ", ".join(SAMPLE_COLUMNS)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor, cursor.copy(f"COPY samples ({columns}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
    else:
        marks = ", ".join("?" for _ in SAMPLE_COLUMNS)
        conn.exec_driver_sql(f"INSERT INTO samples ({columns}) VALUES ({marks})", values)
