"""Checkpoint scores into MLflow: one MLflow run per evalsuite run, metrics at its global step.

Where: MLflow's own settings (``MLFLOW_TRACKING_URI``: a tracking server, or a local store;
unset, MLflow's default, ``sqlite:///mlflow.db`` in the working directory) and experiment
``$MLFLOW_EXPERIMENT_NAME``, else ``evalsuite``. The run's parameters (method, r, k, alpha,
domain, base model, trainable parameters) are logged once, when its MLflow run is created.
Each metric is ``<task>/<metric>`` at ``step`` = the checkpoint's global step, beside
``epoch`` at the same step. MLflow names allow only letters, digits, ``_ - . / :`` and
spaces, so ``pass@1`` is logged as ``pass_at_1`` (``metric_key``). Logging a checkpoint's
suite twice (a job completed again, an export repeated) adds nothing: a tag records it.
"""

from __future__ import annotations

import os
import re
import time

import mlflow
from mlflow.entities import Metric, Param, RunTag

from evalsuite.integrations.trackers import Scores, run_key

DEFAULT_EXPERIMENT = "evalsuite"
RUN_TAG = "evalsuite.run"  # the evalsuite run's name
KEY_TAG = "evalsuite.run_key"  # its run_key, what runs are looked up by
LOGGED_TAG = "evalsuite.logged"  # + .<sha256[:16]>.<suite>: that checkpoint's suite is logged


def metric_key(task: str, metric: str) -> str:
    """``<task>/<metric>`` in the characters MLflow accepts."""
    name = f"{task}/{metric}".replace("@", "_at_")
    name = re.sub(r"[^\w./\- :]", "_", name)
    return re.sub(r"/{2,}", "/", name).strip("/")


class MlflowTracker:
    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.client = mlflow.MlflowClient(tracking_uri)
        name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)
        self._runs: dict[str, str] = {}

    def run_id(self, scores: Scores) -> str:
        """The MLflow run of ``scores.run``, created (with its parameters) on first use."""
        if scores.run in self._runs:
            return self._runs[scores.run]
        key = run_key(scores.run)
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=1
        )
        if found:
            run_id = found[0].info.run_id
        else:
            created = self.client.create_run(
                self.experiment_id,
                run_name=scores.run,
                tags={RUN_TAG: scores.run, KEY_TAG: key},
            )
            run_id = created.info.run_id
            params = [Param(k, str(v)) for k, v in scores.params.items()]
            self.client.log_batch(run_id, params=params)
        self._runs[scores.run] = run_id
        return run_id

    def log(self, items: list[Scores]) -> int:
        new = 0
        for scores in items:
            run_id = self.run_id(scores)
            marker = f"{LOGGED_TAG}.{scores.sha256[:16]}.{scores.suite or 'all'}"
            if marker in self.client.get_run(run_id).data.tags:
                continue
            now = int(time.time() * 1000)
            metrics = [Metric("epoch", scores.epoch, now, scores.step)]
            metrics += [
                Metric(metric_key(r.task, r.metric), r.value, now, scores.step) for r in scores.rows
            ]
            self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(marker, "1")])
            new += 1
        return new
