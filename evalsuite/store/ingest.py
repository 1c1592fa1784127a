"""Turn a runner's ``results.json`` and samples rows into score and sample rows.

Checked field by field here, not trusted: the API accepts the runner's object as it is, so a
malformed one must become a clear 422, never a database error.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from evalsuite.comparable import comparability_hash
from evalsuite.store.db import json_dumps
from evalsuite.store.errors import BadInput
from evalsuite.store.models import Job, Score

AGGREGATE_TASK = "forgetting"
NAME_MAX = 256
INT_MAX = 2**31 - 1
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


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > NAME_MAX or "\x00" in value:
        raise BadInput(f"{what} must be a non-empty string of at most {NAME_MAX} characters")
    return value


def _number(value: Any, what: str, required: bool) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        if required:
            raise BadInput(f"{what} must be finite, got {value!r}")
        return None
    return float(value)


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise BadInput(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _text(value: Any) -> str | None:
    """Descriptive strings (engine, dtype, hashes): kept when they are plain short strings."""
    if isinstance(value, str) and "\x00" not in value and len(value) <= 64:
        return value
    return None


def score_rows(job: Job, results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (task, metric) of ``results.json``; aggregates as task ``forgetting``."""
    tasks = results.get("tasks")
    if not isinstance(tasks, dict):
        raise BadInput("results.tasks must be an object {task: {metrics, partial, config}}")
    model = results.get("model") if isinstance(results.get("model"), dict) else {}
    engine = model.get("engine") if isinstance(model.get("engine"), dict) else {}
    served = {
        "materialization": _text(model.get("materialization")),
        "dtype": _text(model.get("dtype")),
        "engine": _text(engine.get("name")),
        "engine_version": _text(engine.get("version")),
    }
    common = {"checkpoint_id": job.checkpoint_id, "job_id": job.id, **served}
    rows: list[dict[str, Any]] = []
    for task, result in tasks.items():
        _name(task, "a task name in results.tasks")
        if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
            raise BadInput(f"results.tasks.{task} must be an object with 'metrics'")
        config = result.get("config") if isinstance(result.get("config"), dict) else {}
        for metric, m in result["metrics"].items():
            where = f"results.tasks.{task}.metrics.{metric}"
            _name(metric, f"a metric name of task {task!r}")
            if not isinstance(m, dict):
                raise BadInput(f"{where} must be an object {{value, stderr, n}}")
            rows.append(
                {
                    **common,
                    "task": task,
                    "metric": metric,
                    "value": _number(m.get("value"), f"{where}.value", required=True),
                    "stderr": _number(m.get("stderr"), f"{where}.stderr", required=False),
                    "n": _count(m.get("n"), f"{where}.n"),
                    "partial": bool(result.get("partial")),
                    "config_hash": comparability_hash(config, model),
                    "data_sha256": _text(config.get("data_sha256")),
                    "prompt_sha256": _text(config.get("prompt_sha256")),
                }
            )
    aggregates = results.get("aggregates") or {}
    if not isinstance(aggregates, dict):
        raise BadInput("results.aggregates must be an object {name: {value, parts, partial}}")
    for name, agg in aggregates.items():
        where = f"results.aggregates.{name}"
        _name(name, "an aggregate name")
        if not isinstance(agg, dict):
            raise BadInput(f"{where} must be an object {{value, parts, partial}}")
        rows.append(
            {
                **common,
                "task": AGGREGATE_TASK,
                "metric": name,
                "value": _number(agg.get("value"), f"{where}.value", required=True),
                "stderr": None,
                "n": None,
                "partial": bool(agg.get("partial")),
                "config_hash": comparability_hash(agg.get("metrics"), model),
                "data_sha256": None,
                "prompt_sha256": None,
            }
        )
    return rows


def sample_rows(job: Job, samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per samples-file line: doc id, sample index, verdict, score and the whole row."""
    if not isinstance(samples, dict):
        raise BadInput("samples must be an object {task: [samples-file rows]}")
    rows: list[dict[str, Any]] = []
    for task, records in samples.items():
        _name(task, "a task name in samples")
        if not isinstance(records, list):
            raise BadInput(f"samples.{task} must be a list of samples-file rows")
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise BadInput(f"samples.{task}[{i}] must be an object (one samples-file row)")
            doc_id = record.get("doc_id", i)
            doc_text = doc_id if isinstance(doc_id, str) else json.dumps(doc_id)
            if "\x00" in doc_text:
                raise BadInput(f"samples.{task}[{i}].doc_id must not contain NUL characters")
            index = record.get("sample_index", 0)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= INT_MAX:
                raise BadInput(f"samples.{task}[{i}].sample_index must be an integer >= 0")
            verdict = record.get("verdict")
            score = record.get("score")
            finite = isinstance(score, int | float) and not isinstance(score, bool)
            rows.append(
                {
                    "checkpoint_id": job.checkpoint_id,
                    "job_id": job.id,
                    "task": task,
                    "doc_id": doc_text,
                    "sample_index": index,
                    "correct": verdict if isinstance(verdict, bool) else None,
                    "score": float(score) if finite and math.isfinite(score) else None,
                    "record": record,
                }
            )
    return rows


def store_results(
    session: Session,
    job: Job,
    results: dict[str, Any],
    samples: dict[str, list[dict[str, Any]]],
) -> tuple[int, int]:
    """Insert the job's scores and samples in the caller's transaction; returns the counts."""
    if not isinstance(results, dict):
        raise BadInput("results must be the runner's results.json object")
    scores = score_rows(job, results)
    rows = sample_rows(job, samples or {})
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
