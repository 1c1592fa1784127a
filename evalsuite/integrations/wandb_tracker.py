"""Checkpoint scores into Weights & Biases: one W&B run per evalsuite run, on the step axis
the Hugging Face Trainer's W&B integration uses (``train/global_step``).

Where: W&B's own settings (``WANDB_PROJECT``, else project ``evalsuite``; ``WANDB_ENTITY``;
``WANDB_MODE=offline`` writes the run under ``WANDB_DIR`` with no network, for ``wandb sync``
later). The run's id is fixed by the evalsuite run's name (``run_key``), so every job of a
run resumes the same W&B run; its config holds the run's parameters. Each logged checkpoint
gives ``evalsuite/<task>/<metric>`` and ``evalsuite/epoch`` at ``train/global_step`` = its
global step, and a table ``evalsuite/epoch_<E>/<suite>`` (task, metric, value, stderr, n,
partial): one per epoch and suite. W&B keeps every log, so an export repeated logs again.
"""

from __future__ import annotations

import os

import wandb

from evalsuite.integrations.trackers import Scores, run_key

DEFAULT_PROJECT = "evalsuite"
STEP_KEY = "train/global_step"  # the Trainer's W&B step axis
PREFIX = "evalsuite"
COLUMNS = ["task", "metric", "value", "stderr", "n", "partial"]


def table_key(scores: Scores) -> str:
    return f"{PREFIX}/epoch_{scores.epoch:g}/{scores.suite or 'all'}"


class WandbTracker:
    def __init__(self, project: str | None = None, entity: str | None = None) -> None:
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.entity = entity or os.environ.get("WANDB_ENTITY")

    def log(self, items: list[Scores]) -> int:
        if not items:
            return 0
        first = items[0]
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            id=run_key(first.run),
            name=first.run,
            resume="allow",
            config=first.params,
            job_type="evalsuite",
        )
        try:
            run.define_metric(STEP_KEY)
            run.define_metric(f"{PREFIX}/*", step_metric=STEP_KEY)
            for scores in items:
                data = {STEP_KEY: scores.step, f"{PREFIX}/epoch": scores.epoch}
                data |= {f"{PREFIX}/{r.task}/{r.metric}": r.value for r in scores.rows}
                rows = [[r.task, r.metric, r.value, r.stderr, r.n, r.partial] for r in scores.rows]
                data[table_key(scores)] = wandb.Table(columns=COLUMNS, data=rows)
                run.log(data)
        finally:
            run.finish()
        return len(items)
