"""Checkpoint, sample and job answers shaped into table rows for the pages.

The runner writes a sample's verdict details under ``record["details"]`` (HumanEval+:
status, failed_split, failed_input; MATH: extracted, gold, paper, robust); older or foreign
rows may carry them at the top level, so both places are read.
"""

from __future__ import annotations

from typing import Any

JOB_STATUSES = ("PENDING", "RUNNING", "FINISHED", "FAILED")
CONFIG_FIELDS = ("materialization", "dtype", "engine", "engine_version", "data_sha256")


def detail(record: dict[str, Any], key: str) -> Any:
    """A verdict detail of a sample row, wherever the writer put it."""
    details = record.get("details") or {}
    return details.get(key, record.get(key))


def clip(text: Any, limit: int = 300) -> str:
    """Long inputs and completions cut for a table cell (the full text stays in the expander)."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def score_rows(scores: list[dict[str, Any]], breakdowns: bool = False) -> list[dict[str, Any]]:
    """One row per (task, metric) with the config it was measured under; breakdown metrics
    (a ``/`` in the name) only when asked, since MATH alone has dozens."""
    rows = []
    for s in sorted(scores, key=lambda s: (s["task"], s["metric"])):
        if "/" in s["metric"] and not breakdowns:
            continue
        rows.append(
            {
                "task": s["task"],
                "metric": s["metric"],
                "value": s.get("value"),
                "stderr": s.get("stderr"),
                "n": s.get("n"),
                "partial": bool(s.get("partial")),
                **{k: s.get(k) for k in CONFIG_FIELDS},
            }
        )
    return rows


def code_failure_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failing HumanEval+ samples: status and the first failing input, split included."""
    rows = []
    for item in items:
        record = item.get("record") or {}
        rows.append(
            {
                "doc_id": item.get("doc_id"),
                "sample": item.get("sample_index"),
                "status": detail(record, "status"),
                "failed_split": detail(record, "failed_split"),
                "failed_input": clip(detail(record, "failed_input")),
            }
        )
    return rows


def math_answer_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MATH answers: extracted vs gold and the verdict of each grading mode side by side."""
    rows = []
    for item in items:
        record = item.get("record") or {}
        rows.append(
            {
                "doc_id": item.get("doc_id"),
                "sample": item.get("sample_index"),
                "extracted": detail(record, "extracted"),
                "gold": detail(record, "gold"),
                "paper": detail(record, "paper"),
                "robust": detail(record, "robust"),
                "status": detail(record, "status"),
                "subject": detail(record, "subject"),
                "level": detail(record, "level"),
            }
        )
    return rows


def job_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns of a job that say what it is and how it went."""
    keys = ("id", "run", "epoch", "suite", "status", "attempts", "max_attempts", "worker_id")
    return [{k: j.get(k) for k in (*keys, "error", "created_at", "finished_at")} for j in jobs]
