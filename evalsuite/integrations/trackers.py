"""Scores where people already look: a checkpoint's metrics into MLflow or Weights & Biases,
on the training's own step axis (the checkpoint's global step).

Two routes share this module: the worker (``evalsuite worker --track mlflow``) logs each job
it finishes, and ``evalsuite export --to mlflow --run NAME`` logs what the service stored.
Both build a ``Scores`` (one checkpoint's metrics, with its run's parameters) and hand it to
a ``Tracker``. The libraries are optional (``pip install 'evalsuite[trackers]'``); a tracker
named without its library installed is refused before anything runs, with that hint.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from evalsuite.client import ApiClient
from evalsuite.errors import EvalsuiteError
from evalsuite.protocol import forgetting

RUN_PARAMS = ("method", "r", "k", "alpha", "domain", "base_model", "trainable_params")
EXTRA = "trackers"  # pyproject's optional extra holding both libraries
# name -> (module, class, the package to install)
TRACKERS = {
    "mlflow": ("evalsuite.integrations.mlflow_tracker", "MlflowTracker", "mlflow-skinny"),
    "wandb": ("evalsuite.integrations.wandb_tracker", "WandbTracker", "wandb"),
}


@dataclass(frozen=True)
class Row:
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int | None
    partial: bool


@dataclass
class Scores:
    """One checkpoint's metrics (from one job's suite, or all the service stored)."""

    run: str
    params: dict[str, Any]
    sha256: str
    epoch: float
    step: int
    suite: str | None
    rows: list[Row] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return any(r.partial for r in self.rows)


class Tracker(Protocol):
    def log(self, items: list[Scores]) -> int:
        """Log the checkpoints of one run (ascending step); how many were new to it."""
        ...


class TrackerMissing(EvalsuiteError):
    """A tracker was asked for but its library is not installed."""


def make_tracker(name: str) -> Tracker:
    """The tracker called ``name``, refused with the install hint when its library is absent."""
    if name not in TRACKERS:
        raise EvalsuiteError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
    module, cls, package = TRACKERS[name]
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError as e:
        raise TrackerMissing(
            f"logging to {name} needs the {package} package ({e}); install it with "
            f"pip install 'evalsuite[{EXTRA}]' (or pip install {package})"
        ) from None


def run_key(run: str) -> str:
    """A stable id for an evalsuite run in a tracker (any characters in the name)."""
    return "evalsuite-" + hashlib.sha256(run.encode()).hexdigest()[:20]


def params_of(run: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters as the tracker records them once (the absent ones left out)."""
    return {k: run[k] for k in RUN_PARAMS if run.get(k) is not None}


def step_of(checkpoint: dict[str, Any]) -> int:
    """The checkpoint's global step: the training's own x axis. A checkpoint registered
    without one (no trainer_state.json, no step in its name) falls back to its epoch."""
    step = checkpoint.get("step")
    return int(step) if step is not None else round(float(checkpoint["epoch"]))


def from_results(
    results: dict[str, Any], run: dict[str, Any], checkpoint: dict[str, Any], suite: str | None
) -> Scores:
    """A finished job's ``results.json`` (docs/results.md) as ``Scores``."""
    rows = [
        Row(task, metric, float(m["value"]), m.get("stderr"), m.get("n"), bool(t.get("partial")))
        for task, t in results.get("tasks", {}).items()
        for metric, m in t.get("metrics", {}).items()
    ]
    aggregate_task = forgetting().task  # suite aggregates, as the store names them
    rows += [
        Row(aggregate_task, name, float(a["value"]), None, None, bool(a.get("partial")))
        for name, a in results.get("aggregates", {}).items()
    ]
    return _scores(run, checkpoint, suite, rows)


def from_service(client: ApiClient, run_name: str) -> list[Scores]:
    """Every scored checkpoint of ``run_name`` as the service stored it, ascending step."""
    run = client.get_run(run_name)
    found = []
    for ckpt in run["checkpoints"]:
        detail = client.get_checkpoint(ckpt["id"])
        rows = [
            Row(s["task"], s["metric"], s["value"], s["stderr"], s["n"], s["partial"])
            for s in detail["scores"]
        ]
        if rows:
            found.append(_scores(run, detail, None, rows))
    return sorted(found, key=lambda s: (s.step, s.epoch))


def _scores(
    run: dict[str, Any], checkpoint: dict[str, Any], suite: str | None, rows: list[Row]
) -> Scores:
    return Scores(
        run=run["name"],
        params=params_of(run),
        sha256=checkpoint["sha256"],
        epoch=float(checkpoint["epoch"]),
        step=step_of(checkpoint),
        suite=suite,
        rows=rows,
    )


class JobTracking:
    """The worker's side: each job it finished, logged to every tracker asked for.

    The trackers are made when the worker starts, so a missing library stops it at once with
    the install hint. Logging never fails a job: the scores are stored in the service
    already, and ``evalsuite export`` can log them again; a tracker's error is one log line.
    """

    def __init__(self, client: ApiClient, names: list[str], log: Callable[[str], None]) -> None:
        self.client = client
        self.trackers = {name: make_tracker(name) for name in dict.fromkeys(names)}
        self.log_line = log
        self._runs: dict[str, dict[str, Any]] = {}

    def log(self, claim: dict[str, Any], results: dict[str, Any]) -> None:
        job_id = claim["id"]
        try:
            run = self._runs.get(claim["run"]) or self.client.get_run(claim["run"])
            self._runs[claim["run"]] = run
            checkpoint = self.client.get_checkpoint(claim["checkpoint_id"])
            scores = from_results(results, run, checkpoint, claim["suite"])
        except EvalsuiteError as e:
            self.log_line(f"job {job_id}: not logged to {', '.join(self.trackers)}: {e}")
            return
        for name, tracker in self.trackers.items():
            try:
                tracker.log([scores])
            except Exception as e:  # any library's failure: a line, never the job
                self.log_line(f"job {job_id}: logging to {name} failed: {type(e).__name__}: {e}")
                continue
            self.log_line(f"job {job_id}: {len(scores.rows)} metrics logged to {name} at step "
                          f"{scores.step}")  # fmt: skip
