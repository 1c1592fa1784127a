"""A run in the results service (``RUN@best|@last|@EPOCH``) as one side of the gate.

Reads only documented endpoints (docs/api.md): ``GET /v1/runs/{run}`` for the checkpoints,
``GET /v1/checkpoints/{id}`` for their scores (with the settings that produced them) and
``GET /v1/checkpoints/{id}/samples`` for the per-sample rows, which are the runner's
``samples_<task>.jsonl`` rows unchanged (``record``), so per-document values are rebuilt by
the same code as for a results directory.

Selectors follow the service's own definitions: LAST is the checkpoint marked ``final``
(else the highest epoch); BEST is, per gated metric, the checkpoint with the highest
non-partial score (ties: the earlier epoch), so ``run@best`` may pick a different epoch for
pass@1 than for pass@10, as the paper's "best" columns do. Neither is ever the base model
registered as epoch 0 (``evalsuite.base_epoch``); ``run@0`` names it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from evalsuite.base_epoch import is_trained
from evalsuite.comparable import DEFAULT_PLATFORM
from evalsuite.gate.evidence import GateInputError, TaskEvidence

_PAGE = 1000  # the service's largest samples page


class Reader(Protocol):
    """The read methods of ``evalsuite.client.ApiClient`` the gate uses (the API's own gate
    router passes an in-process equivalent)."""

    def get_run(self, name: str) -> dict[str, Any]: ...

    def get_checkpoint(self, checkpoint_id: int) -> dict[str, Any]: ...

    def samples(
        self,
        checkpoint_id: int,
        task: str | None = None,
        failing: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]: ...

    def list_jobs(
        self, status: str | None = None, run: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...


_IDENTITY = (
    "data_sha256",
    "prompt_sha256",
    "materialization",
    "dtype",
    "engine",
    "engine_version",
    "platform",  # null in scores stored before it was recorded: the CPU
    "config_hash",  # the service's hash of the task config + the fields above
)


def _identity_value(score: dict[str, Any], key: str) -> Any:
    """A score's identity field; a platform the service did not record is the CPU's."""
    value = score.get(key)
    return value or DEFAULT_PLATFORM if key == "platform" else value


def parse_ref(ref: str) -> tuple[str, str]:
    """``run@best`` -> (run, "best"); ``run`` alone means ``run@last``; ``run@2`` an epoch."""
    run, at, selector = ref.rpartition("@")
    if not at:
        return ref, "last"
    selector = selector.strip().lower()
    if selector not in ("best", "last"):
        try:
            float(selector)
        except ValueError:
            raise GateInputError(
                f"{ref!r}: the selector after '@' must be best, last or an epoch number"
            ) from None
    if not run:
        raise GateInputError(f"{ref!r}: no run name before '@'")
    return run, selector


class ApiSource:
    """One run of the service, with a checkpoint selector."""

    def __init__(self, api: Reader, ref: str, label: str):
        self.api = api
        self.ref = ref
        self.label = label
        self.name = ref
        self.run, self.selector = parse_ref(ref)
        run = api.get_run(self.run)
        self.checkpoints: list[dict[str, Any]] = sorted(
            run.get("checkpoints") or [], key=lambda c: float(c.get("epoch") or 0)
        )
        if not self.checkpoints:
            raise GateInputError(f"{label}: run {self.run!r} has no checkpoints yet")
        self._scores: dict[Any, list[dict[str, Any]]] = {}
        self._rows: dict[tuple[Any, str], list[dict[str, Any]]] = {}  # read once per task

    def scores(self, checkpoint: dict[str, Any]) -> list[dict[str, Any]]:
        key = checkpoint["id"]
        if key not in self._scores:
            self._scores[key] = self.api.get_checkpoint(key).get("scores") or []
        return self._scores[key]

    def _trained(self) -> list[dict[str, Any]]:
        """The checkpoints BEST and LAST choose from: not the base as epoch 0."""
        trained = [c for c in self.checkpoints if is_trained(c.get("epoch"))]
        if not trained:
            raise GateInputError(
                f"{self.label}: run {self.run!r} has only its base (epoch 0) yet; name it as "
                f"{self.run}@0"
            )
        return trained

    def _fixed_checkpoint(self) -> dict[str, Any]:
        if self.selector == "last":
            trained = self._trained()
            final = [c for c in trained if c.get("final")]
            return final[-1] if final else trained[-1]
        epoch = float(self.selector)
        for c in self.checkpoints:
            if float(c.get("epoch") or 0) == epoch:
                return c
        epochs = ", ".join(f"{float(c.get('epoch') or 0):g}" for c in self.checkpoints)
        raise GateInputError(f"{self.label}: run {self.run!r} has no epoch {epoch:g} ({epochs})")

    def _best_checkpoint(self, task: str, metric: str) -> dict[str, Any]:
        best, best_value = None, float("-inf")
        for c in self._trained():  # sorted by epoch: '>' keeps the earlier on ties
            for s in self.scores(c):
                mine = s["task"] == task and s["metric"] == metric and not s.get("partial")
                if mine and s["value"] is not None and s["value"] > best_value:
                    best, best_value = c, s["value"]
        if best is None:
            raise GateInputError(
                f"{self.label}: run {self.run!r} has no complete (non-partial) score for "
                f"{task}/{metric}, so it has no BEST"
            )
        return best

    def tasks(self) -> dict[str, list[str]]:
        chosen = self._trained() if self.selector == "best" else [self._fixed_checkpoint()]
        out: dict[str, list[str]] = {}
        for c in chosen:
            for s in self.scores(c):
                if s["metric"] not in out.setdefault(s["task"], []):
                    out[s["task"]].append(s["metric"])
        return out

    def evidence(self, task: str, metric: str) -> TaskEvidence:
        if self.selector == "best":
            checkpoint = self._best_checkpoint(task, metric)
        else:
            checkpoint = self._fixed_checkpoint()
        where = (
            f"{self.run}@{self.selector} (checkpoint {checkpoint['id']}, "
            f"epoch {float(checkpoint.get('epoch') or 0):g})"
        )
        rows = [s for s in self.scores(checkpoint) if s["task"] == task]
        if not rows:
            raise GateInputError(f"{self.label}: {where} has no scores for task {task!r}")
        picked = [s for s in rows if s["metric"] == metric] or rows
        kinds = {tuple(_identity_value(s, k) for k in _IDENTITY) for s in picked}
        if len(kinds) > 1:
            raise GateInputError(
                f"{self.label}: {where} holds {task}/{metric} from {len(kinds)} different "
                "settings (materialisation, dtype, engine, platform or task config); gate one "
                "of them with --candidate-results/--baseline-results"
            )
        first, kind = picked[0], next(iter(kinds))
        same = [s for s in rows if tuple(_identity_value(s, k) for k in _IDENTITY) == kind]
        checkpoint_id = checkpoint["id"]
        return TaskEvidence(
            where=where,
            partial=bool(first.get("partial")),
            stored={s["metric"]: float(s["value"]) for s in same if s.get("value") is not None},
            identity={k: _identity_value(first, k) for k in _IDENTITY},
            load_rows=lambda: self.sample_rows(checkpoint_id, task),
            checkpoint_id=checkpoint_id,
        )

    def sample_rows(self, checkpoint_id: Any, task: str) -> list[dict[str, Any]]:
        """Every sample row of one task, page by page, as the runner wrote it; fetched once
        (each metric of the task reads the same rows)."""
        key = (checkpoint_id, task)
        if key not in self._rows:
            rows: list[dict[str, Any]] = []
            while True:
                page = self.api.samples(checkpoint_id, task=task, limit=_PAGE, offset=len(rows))
                items = page.get("items") or []
                rows += [item["record"] for item in items]
                if not items or len(rows) >= int(page.get("total", 0)):
                    break
            self._rows[key] = rows
        return self._rows[key]


def wait_for_jobs(api: Reader, run: str, timeout_s: float, poll_s: float = 10.0) -> None:
    """Block until the run has no PENDING/RUNNING job; a FAILED job or the timeout refuses."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = api.list_jobs(run=run, limit=10_000)
        failed = [j for j in jobs if j.get("status") == "FAILED"]
        if failed:
            errors = "; ".join(
                f"job {j['id']} ({j.get('suite')}): {j.get('error')}" for j in failed
            )
            raise GateInputError(f"run {run!r} has failed jobs: {errors}")
        busy = [j for j in jobs if j.get("status") in ("PENDING", "RUNNING")]
        if not busy:
            return
        if time.monotonic() >= deadline:
            raise GateInputError(
                f"run {run!r} still has {len(busy)} unfinished jobs after {timeout_s:g} s; "
                "raise --wait or check the workers (GET /v1/jobs?status=RUNNING)"
            )
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
