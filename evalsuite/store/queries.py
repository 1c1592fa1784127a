"""BEST / LAST per run, the paper's Tables 1 and 2, and curves, aggregated in SQL.

BEST is the maximum over a run's non-partial checkpoints (ties: the earlier epoch); LAST is
the checkpoint marked final, else the highest epoch. Partial (``--limit``) scores never enter,
nor does epoch 0, the base model (``evalsuite.base_epoch``); curves show it.
Both come from one window-function pass over the (task, metric) slice of ``scores``, which the
``ix_scores_task_metric`` index serves, so a leaderboard costs one query however many runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from evalsuite.base_epoch import BASE_EPOCH, is_trained
from evalsuite.store.models import BaseModel, Checkpoint, Run, Score


@dataclass
class BestLast:
    run: str
    method: str
    r: int | None
    k: int | None
    base_model: str
    metric: str
    best: float
    best_epoch: float
    last: float
    last_epoch: float
    n_epochs: int
    train_time_s: float | None
    trainable_params: int | None
    extra_params: int | None
    best_stderr: float | None = None  # the stored stderr of the BEST / LAST score
    last_stderr: float | None = None


def _ranked(task: str, metrics: Sequence[str]) -> Select:
    """Every non-partial score of the slice, ranked for BEST and for LAST within (run, metric)."""
    per = (Run.id, Score.metric)
    return (
        select(
            Run.id.label("run_id"),
            Score.metric,
            Score.value,
            Score.stderr,
            Checkpoint.epoch,
            func.row_number()
            .over(partition_by=per, order_by=(Score.value.desc(), Checkpoint.epoch, Score.id))
            .label("best_rank"),
            func.row_number()
            .over(
                partition_by=per,
                order_by=(
                    Checkpoint.final.desc(),
                    Checkpoint.epoch.desc(),
                    Score.value.desc(),
                    Score.id,
                ),
            )
            .label("last_rank"),
        )
        .join(Checkpoint, Checkpoint.id == Score.checkpoint_id)
        .join(Run, Run.id == Checkpoint.run_id)
        .where(
            Score.task == task,
            Score.metric.in_(metrics),
            Score.partial.is_(False),
            Checkpoint.epoch > BASE_EPOCH,
        )
    )


def best_last(
    session: Session,
    task: str,
    metrics: Sequence[str],
    domain: str | None = None,
    base_model: str | None = None,
    method: str | None = None,
    r: int | None = None,
) -> list[BestLast]:
    """One row per (run, metric) that has scores: BEST with its epoch, LAST with its epoch."""
    ranked = _ranked(task, metrics)
    if domain:
        ranked = ranked.where(Run.domain == domain)
    if method:
        ranked = ranked.where(Run.method == method)
    if r is not None:
        ranked = ranked.where(Run.r == r)
    if base_model:
        ranked = ranked.join(BaseModel, BaseModel.id == Run.base_model_id).where(
            BaseModel.name == base_model
        )
    sub = ranked.subquery()

    def pick(rank, column):
        return func.max(case((rank == 1, column)))

    query = (
        select(
            Run.name,
            Run.method,
            Run.r,
            Run.k,
            BaseModel.name.label("base_model"),
            sub.c.metric,
            pick(sub.c.best_rank, sub.c.value),
            pick(sub.c.best_rank, sub.c.epoch),
            pick(sub.c.last_rank, sub.c.value),
            pick(sub.c.last_rank, sub.c.epoch),
            func.count(sub.c.epoch.distinct()),
            Run.train_time_s,
            Run.trainable_params,
            Run.extra_params,
            pick(sub.c.best_rank, sub.c.stderr),
            pick(sub.c.last_rank, sub.c.stderr),
        )
        .join(Run, Run.id == sub.c.run_id)
        .join(BaseModel, BaseModel.id == Run.base_model_id)
        .group_by(Run.id, BaseModel.name, sub.c.metric)
    )
    return [BestLast(*row) for row in session.execute(query)]


def leaderboard(
    session: Session,
    task: str,
    metric: str,
    domain: str | None = None,
    base_model: str | None = None,
) -> list[BestLast]:
    """Runs by BEST of one (task, metric), best first (ties: run name)."""
    rows = best_last(session, task, [metric], domain=domain, base_model=base_model)
    return sorted(rows, key=lambda row: (-row.best, row.run))


@dataclass
class CurvePoint:
    epoch: float
    value: float
    checkpoint_id: int
    # the stored stderr; a checkpoint holding the metric from several settings gives the
    # largest (a band never narrower than one of its scores'); None when none was stored
    stderr: float | None = None


def curves(
    session: Session, runs: Sequence[str], task: str, metric: str
) -> dict[str, list[CurvePoint]]:
    """Metric vs epoch per run (non-partial; one point per checkpoint), runs in the given order."""
    query = (
        select(
            Run.name, Checkpoint.epoch, func.max(Score.value), Checkpoint.id, func.max(Score.stderr)
        )
        .join(Checkpoint, Checkpoint.id == Score.checkpoint_id)
        .join(Run, Run.id == Checkpoint.run_id)
        .where(
            Run.name.in_(runs),
            Score.task == task,
            Score.metric == metric,
            Score.partial.is_(False),
        )
        .group_by(Run.name, Checkpoint.id, Checkpoint.epoch)
        .order_by(Run.name, Checkpoint.epoch, Checkpoint.id)
    )
    out: dict[str, list[CurvePoint]] = {name: [] for name in runs}
    for name, epoch, value, checkpoint_id, stderr in session.execute(query):
        out[name].append(CurvePoint(epoch, value, checkpoint_id, stderr))
    return out


def best_epoch(points: Sequence[CurvePoint]) -> float | None:
    """The epoch of the maximum (ties: the earlier epoch), as BEST defines it (never the base's
    epoch 0)."""
    trained = [p for p in points if is_trained(p.epoch)]
    if not trained:
        return None
    return min(trained, key=lambda p: (-p.value, p.epoch)).epoch
