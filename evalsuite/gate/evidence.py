"""What the gate compares: one task of one checkpoint, and its per-document values.

Both sources (a results directory, the results service) produce the same ``TaskEvidence``:
the settings that must agree between the two sides, the stored metric values, and the
``samples_<task>.jsonl`` rows exactly as the runner wrote them. Per-document values are
rebuilt from those rows here, once, for every source:

- ``pass@k`` (also ``base/pass@k``, ``plus/pass@k``): the unbiased estimate from the
  document's n samples and c passing ones (the same estimator as the stored metric);
- a metric that the rows carry in ``details`` (lm-eval's ``acc`` / ``acc_norm``, the
  multiple-choice ``acc_norm``) or under the scorer's own name (MATH ``acc`` is
  ``details.paper``, ``acc_robust`` is ``details.robust``): the mean over the document's samples;
- otherwise the sample's ``verdict`` (``exact_match``, multiple-choice ``acc``).

The mean of the per-document values must reproduce the stored metric; when it does not, the
samples do not belong to those results (or the metric is not per-document) and the gate
refuses rather than compare the wrong numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from evalsuite.errors import EvalsuiteError
from evalsuite.protocol import task_metrics
from evalsuite.scoring.code.passk import estimate_pass_at_k


def primary_metrics(task: str) -> tuple[str, ...]:
    """The paper's numbers of a task (its declared ``metric_list``), gated when no
    --task/--metric is given; empty for a task the bundled protocol does not declare."""
    return tuple(m.metric for m in task_metrics(task))


# Where a metric lives in a sample's details when the scorer names it otherwise.
_DETAIL_KEYS: dict[str, tuple[str, ...]] = {"acc": ("acc", "paper"), "acc_robust": ("robust",)}
_PASS_AT_K = re.compile(r"^(?:(base|plus)/)?pass@(\d+)$")
_STATUS_KEY = {None: None, "base": "base_status", "plus": "plus_status"}
# |mean of per-document values - stored value| allowed before the samples are refused
REPRODUCE_TOLERANCE = 1e-6


class GateInputError(EvalsuiteError):
    """The gate cannot decide: missing, unlike or unreadable inputs (exit code 2)."""


@dataclass
class TaskEvidence:
    """One task of one checkpoint, as the gate needs it."""

    where: str  # human description: results dir path, or run@selector and checkpoint id
    partial: bool
    stored: dict[str, float]  # metric name -> stored value
    identity: dict[str, Any]  # field -> value; must be equal on both sides
    load_rows: Callable[[], list[dict[str, Any]]] = list
    checkpoint_id: int | None = None  # in the service: the checkpoint read (for its samples)


class Source(Protocol):
    """One side of the comparison (candidate or baseline)."""

    label: str  # which side: "candidate" or "baseline"
    name: str  # what it is: a results directory, or RUN@selector

    def tasks(self) -> dict[str, list[str]]:
        """Task name -> the metric names stored for it."""
        ...

    def evidence(self, task: str, metric: str) -> TaskEvidence:
        """The evidence for one metric (a BEST selector may pick a checkpoint per metric)."""
        ...


def default_checks(candidate: dict[str, list[str]], baseline: dict[str, list[str]]):
    """(task, metric) pairs gated when none are named: the paper's metrics of the tasks both
    sides have; for other tasks every stored top-level metric both sides have."""
    checks: list[tuple[str, str]] = []
    for task in sorted(set(candidate) & set(baseline)):
        both = [m for m in candidate[task] if m in baseline[task] and "/" not in m]
        primary = primary_metrics(task) or None
        metrics = [m for m in primary if m in both] if primary else sorted(both)
        checks.extend((task, m) for m in metrics)
    return checks


def _sample_value(row: dict[str, Any], metric: str) -> float | None:
    details = row.get("details") or {}
    for key in _DETAIL_KEYS.get(metric, (metric,)):
        if key in details:
            value = details[key]
            return None if value is None else float(value)
    verdict = row.get("verdict")
    return None if verdict is None else float(verdict)


def _passed(row: dict[str, Any], status_key: str | None) -> bool:
    if status_key is None:
        return row.get("verdict") is True
    return (row.get("details") or {}).get(status_key) == "pass"


def per_document(rows: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """Document id -> the metric's value on that document (rules in the module docstring).

    Documents keep their first-seen order; a document whose samples carry no value for the
    metric (e.g. ``acc`` of a MATH run graded in robust mode only) is left out.
    """
    by_doc: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "doc_id" not in row:
            raise GateInputError(f"a sample row has no doc_id: {str(row)[:200]}")
        by_doc.setdefault(str(row["doc_id"]), []).append(row)
    match = _PASS_AT_K.match(metric)
    out: dict[str, float] = {}
    if match:
        k, status_key = int(match.group(2)), _STATUS_KEY[match.group(1)]
        for doc, samples in by_doc.items():
            n = len(samples)
            if n < k:
                raise GateInputError(
                    f"{metric} needs at least {k} samples per document; document {doc} has {n}"
                )
            out[doc] = estimate_pass_at_k(n, sum(_passed(s, status_key) for s in samples), k)
        return out
    for doc, samples in by_doc.items():
        values = [v for v in (_sample_value(s, metric) for s in samples) if v is not None]
        if values:
            out[doc] = sum(values) / len(values)
    return out


def check_reproduces(values: dict[str, float], stored: float | None, what: str) -> None:
    """Refuse per-document values whose mean is not the stored metric (None: not stored)."""
    if stored is None or not values:
        return
    mean = sum(values.values()) / len(values)
    if abs(mean - stored) > REPRODUCE_TOLERANCE:
        raise GateInputError(
            f"{what}: the mean of the per-document values ({mean:.6f}) does not reproduce the "
            f"stored value ({stored:.6f}); the samples do not belong to these results, or the "
            "metric is not a mean over documents"
        )


def metric_is_known(metric: str, stored: dict[str, float]) -> bool:
    """pass@k can always be rebuilt from samples; anything else must have been stored."""
    return metric in stored or _PASS_AT_K.match(metric) is not None
