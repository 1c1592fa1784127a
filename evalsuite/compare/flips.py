"""Two checkpoints item by item: which documents flipped, and the paired difference.

Per task, both sides are paired by the gate itself (``pair_documents``: the same refusals
of unlike settings, partial runs and different documents, the same per-document values) and
the difference ``b - a`` gets the gate's paired bootstrap (``Pairing.bootstrap``), so an
interval here equals the gate's for the same pair; ``b`` plays the gate's candidate and ``a``
its baseline.

A document is *solved* when its value under the task's flip metric is above 0: for sampled
tasks (HumanEval+ pass@1 = c/n) at least one passing sample, for MATH a correct answer, for
multiple choice the right choice. It *flipped* when it is solved on one side only: ``lost``
(solved by a, not by b) or ``gained``. Each flipped document lists its value on both sides
for every compared metric of the task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evalsuite.errors import EvalsuiteError
from evalsuite.gate.compare import GateSettings, Pairing, pair_documents
from evalsuite.gate.evidence import Source, default_checks


@dataclass
class TaskComparison:
    """One task: its flips under ``flip_metric`` and the paired result of each metric."""

    task: str
    flip_metric: str
    a_where: str | None = None
    b_where: str | None = None
    a_checkpoint: int | None = None  # service checkpoint ids, for fetching the answers
    b_checkpoint: int | None = None
    reason: str | None = None  # why the task could not be compared
    n_docs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    lost: list[dict[str, Any]] = field(default_factory=list)
    gained: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _metric_entry(metric: str, pairing: Pairing, settings: GateSettings) -> dict[str, Any]:
    if pairing.reason:
        return {"metric": metric, "reason": pairing.reason, "result": None, "points": None}
    r = pairing.bootstrap(settings)
    points = {
        k: 100 * getattr(r, k) for k in ("baseline", "candidate", "diff", "ci_low", "ci_high")
    }
    return {"metric": metric, "reason": None, "result": r.as_dict(), "points": points}


def compare_task(
    task: str, metrics: list[str], a: Source, b: Source, settings: GateSettings
) -> TaskComparison:
    """Flips under ``metrics[0]`` and every metric's paired bootstrap (b - a)."""
    pairings = {m: pair_documents(task, m, b, a) for m in metrics}
    flip = pairings[metrics[0]]
    out = TaskComparison(task, metrics[0])
    if flip.baseline is not None and flip.candidate is not None:
        out.a_where, out.b_where = flip.baseline.where, flip.candidate.where
        out.a_checkpoint = flip.baseline.checkpoint_id
        out.b_checkpoint = flip.candidate.checkpoint_id
    out.metrics = [_metric_entry(m, p, settings) for m, p in pairings.items()]
    if flip.reason:
        out.reason = flip.reason
        return out
    values = {m: p for m, p in pairings.items() if not p.reason}
    counts = {"lost": 0, "gained": 0, "both_solved": 0, "both_failed": 0}
    for doc in flip.docs:
        was, now = flip.baseline_values[doc] > 0, flip.candidate_values[doc] > 0
        key = ("both_solved" if now else "lost") if was else ("gained" if now else "both_failed")
        counts[key] += 1
        if was != now:
            item = {
                "doc_id": doc,
                "a": {m: p.baseline_values.get(doc) for m, p in values.items()},
                "b": {m: p.candidate_values.get(doc) for m, p in values.items()},
            }
            (out.lost if was else out.gained).append(item)
    out.n_docs, out.counts = len(flip.docs), counts
    return out


def _plan(a: Source, b: Source, tasks: list[str] | None) -> list[tuple[str, list[str]]]:
    """(task, metrics) in the gate's default choice: the paper's metrics, else every stored
    top-level one; the first metric decides the flips."""
    per_task: dict[str, list[str]] = {}
    for task, metric in default_checks(b.tasks(), a.tasks()):
        per_task.setdefault(task, []).append(metric)
    if tasks:
        missing = [t for t in tasks if t not in per_task]
        if missing:
            known = ", ".join(sorted(per_task)) or "none"
            raise EvalsuiteError(f"no task {missing} on both sides (common tasks: {known})")
        return [(t, per_task[t]) for t in tasks]
    return sorted(per_task.items())


def empty_report(
    a: str, b: str, settings: GateSettings, reason: str | None = None
) -> dict[str, Any]:
    """The report's frame; with ``reason`` when a side could not even be opened."""
    return {
        "a": a,
        "b": b,
        "settings": {"alpha": settings.alpha, "n_boot": settings.n_boot, "seed": settings.seed},
        "reasons": [reason] if reason else [],
        "tasks": [],
    }


def compare(
    a: Source, b: Source, tasks: list[str] | None = None, settings: GateSettings | None = None
) -> dict[str, Any]:
    """The ``evalsuite compare --json`` / ``GET /v1/compare`` report."""
    settings = settings or GateSettings()
    report = empty_report(a.name, b.name, settings)
    try:
        plan = _plan(a, b, tasks)
    except EvalsuiteError as e:
        report["reasons"].append(str(e))
        return report
    if not plan:
        report["reasons"].append("nothing to compare: the two sides have no task in common")
    for task, metrics in plan:
        report["tasks"].append(compare_task(task, metrics, a, b, settings).as_dict())
    return report
