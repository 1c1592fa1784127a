"""``grade_math``: extract, normalise and compare MATH answers, in both modes, in a pool.

    report = grade_math(rows, mode="both", workers=2, timeout=5.0)
    report.acc, report.acc_robust, report.samples[0].status, report.to_json()

``acc`` is the paper's metric (RaSA Table 2); ``acc_robust`` is reported beside it, never
instead. Extraction is linear-time and runs here; normalisation and comparison run in the
worker pool, one task per distinct (mode, extracted answer, gold), so a response repeated
across checkpoints or samples is graded once, and each task is killed at ``timeout``.

Per-item status: ``ok``; ``invalid`` when the answer could not be extracted (paper mode: no
"The answer is: "; robust-only mode: neither that nor a ``\\boxed{}``); ``timeout`` when a
mode's comparison passed the limit; ``error`` when a worker failed for another reason.
When several apply, error > timeout > invalid > ok. Anything but a successful comparison
that said "equal" counts as wrong. ``extracted`` is the answer that was graded: the paper
extraction in paper mode, else the robust one (the same string whenever the marker is
there, the last ``\\boxed{}`` otherwise).

Workers may start through multiprocessing's forkserver (when this process has threads),
which re-imports the main module: call ``grade_math`` from under ``if __name__ ==
"__main__":`` in scripts, as with any multiprocessing code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from evalsuite.scoring.errors import ScoringError
from evalsuite.scoring.math.extract import extract_paper_answer, extract_robust_answer
from evalsuite.scoring.math.items import MathItem, item_from_row
from evalsuite.scoring.math.worker import PRELOAD, grade_task, init_worker
from evalsuite.scoring.pool import KillingPool, TaskResult

Mode = Literal["paper", "robust", "both"]
MODES: tuple[str, ...] = ("paper", "robust", "both")
DEFAULT_TIMEOUT = 5.0
MEMORY_LIMIT_MB = 2048  # per worker: a runaway big-integer power fails fast instead of swapping
_STATUS_RANK = {"ok": 0, "invalid": 1, "timeout": 2, "error": 3}


@dataclass(frozen=True, slots=True)
class MathSample:
    """The grading of one item. ``paper`` / ``robust`` are None for a mode not graded."""

    id: Any
    extracted: str | None
    paper: bool | None
    robust: bool | None
    status: str
    gold: str
    subject: str | None = None
    level: str | None = None

    def to_json(self) -> dict[str, Any]:
        keys = ("id", "extracted", "paper", "robust", "status")
        return {k: getattr(self, k) for k in keys}


def _mean(values: list[bool | None]) -> float | None:
    graded = [bool(v) for v in values if v is not None]
    return sum(graded) / len(graded) if graded else None


@dataclass(slots=True)
class MathReport:
    """All samples of one grading run, and the accuracies computed from them."""

    mode: str
    timeout: float
    samples: list[MathSample] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def acc(self) -> float | None:
        """Paper-mode accuracy (None when paper mode was not graded or there are no items)."""
        return _mean([s.paper for s in self.samples])

    @property
    def acc_robust(self) -> float | None:
        return _mean([s.robust for s in self.samples])

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(_STATUS_RANK, 0)
        for s in self.samples:
            counts[s.status] += 1
        return counts

    def breakdown(self, key: Literal["subject", "level"]) -> dict[str, dict[str, Any]]:
        """{group: {n, acc, acc_robust}}; empty when no item carries ``key``."""
        if all(getattr(s, key) is None for s in self.samples):
            return {}
        groups: dict[str, list[MathSample]] = defaultdict(list)
        for s in self.samples:
            groups[getattr(s, key) or "unknown"].append(s)
        return {
            name: {
                "n": len(group),
                "acc": _mean([s.paper for s in group]),
                "acc_robust": _mean([s.robust for s in group]),
            }
            for name, group in sorted(groups.items())
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "acc": self.acc,
            "acc_robust": self.acc_robust,
            "items": [s.to_json() for s in self.samples],
            "n": self.n,
            "mode": self.mode,
            "timeout": self.timeout,
            "status": self.status_counts(),
            "by_subject": self.breakdown("subject"),
            "by_level": self.breakdown("level"),
        }


def grade_math(
    items: Iterable[MathItem | dict[str, Any]],
    mode: Mode = "both",
    workers: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
    on_progress: Callable[[int, int], None] | None = None,
    memory_limit_mb: int | None = MEMORY_LIMIT_MB,
) -> MathReport:
    """Grade responses against gold answers; see the module docstring.

    ``items``: MathItem objects or dicts with ``prediction`` and ``gold`` or ``solution``
    (see ``items``). ``on_progress(done, total)`` is called as comparisons finish.
    """
    if mode not in MODES:
        raise ScoringError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if workers < 1:
        raise ScoringError(f"workers must be at least 1, got {workers}")
    if not timeout > 0:
        raise ScoringError(f"timeout must be a positive number of seconds, got {timeout}")
    rows = [item_from_row(row, f"item {i}", default_id=i) for i, row in enumerate(items)]
    graded = ("paper", "robust") if mode == "both" else (mode,)
    extract = {"paper": extract_paper_answer, "robust": extract_robust_answer}

    answers: list[dict[str, str | None]] = []
    tasks: dict[tuple[str, str, str], int] = {}  # one task per distinct comparison
    for row in rows:
        found = {m: extract[m](row.prediction) for m in graded}
        answers.append(found)
        for m, answer in found.items():
            if answer is not None:
                tasks.setdefault((m, answer, row.gold), len(tasks))

    results = _run(list(tasks), workers, timeout, on_progress, memory_limit_mb)
    report = MathReport(mode=mode, timeout=timeout)
    for row, found in zip(rows, answers, strict=True):
        verdicts: dict[str, bool | None] = {"paper": None, "robust": None}
        statuses = []
        for m, answer in found.items():
            if answer is None:
                verdicts[m], status = False, "invalid"
            else:
                result = results[tasks[(m, answer, row.gold)]]
                verdicts[m], status = result.status == "ok" and bool(result.value), result.status
            statuses.append(status)
        extracted = found["paper"] if mode == "paper" else found["robust"]
        report.samples.append(
            MathSample(
                id=row.id,
                extracted=extracted,
                paper=verdicts["paper"],
                robust=verdicts["robust"],
                status=max(statuses, key=_STATUS_RANK.__getitem__),
                gold=row.gold,
                subject=row.subject,
                level=row.level,
            )
        )
    return report


def _run(
    tasks: list[tuple[str, str, str]],
    workers: int,
    timeout: float,
    on_progress: Callable[[int, int], None] | None,
    memory_limit_mb: int | None,
) -> list[TaskResult[bool]]:
    if not tasks:
        return []
    # grouped by gold, so a worker's parse cache sees the same gold in a row
    order = sorted(range(len(tasks)), key=lambda i: (tasks[i][2], tasks[i][0]))
    done = 0

    def landed(_: int, __: TaskResult[bool]) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, len(tasks))

    with KillingPool(
        grade_task,
        workers=min(workers, len(tasks)),
        timeout=timeout,
        initializer=init_worker,
        preload=PRELOAD,
        memory_limit_mb=memory_limit_mb,
    ) as pool:
        ordered = pool.map([tasks[i] for i in order], on_result=landed)
    results: list[TaskResult[bool]] = [ordered[0]] * len(tasks)
    for position, i in enumerate(order):
        results[i] = ordered[position]
    return results
