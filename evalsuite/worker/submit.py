"""What a training job calls after each epoch: register the checkpoint with the service.

The checkpoint is identified by the sha256 of its files (the same hash the runner records),
so re-submitting an unchanged checkpoint is a no-op and a worker can refuse files that
changed after registration. Epoch, step and the trainable-parameter count come from the
checkpoint itself (``trainer_state.json``, the adapter's tensors) unless given. The run's base
model may be registered too, as epoch 0 (``evalsuite.base_epoch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.base_epoch import BASE_EPOCH, BASE_URI
from evalsuite.client import ApiClient, ApiError
from evalsuite.errors import EvalsuiteError


class SubmitError(EvalsuiteError):
    """The checkpoint cannot be registered as asked."""


@dataclass
class RunFields:
    """The run to create when it does not exist yet (``POST /v1/runs``)."""

    method: str | None = None
    domain: str | None = None
    base_model: str | None = None
    base_model_path: str | None = None
    r: int | None = None
    k: int | None = None
    alpha: float | None = None
    train_time_s: float | None = None
    extra_params: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def checkpoint_facts(path: Path) -> dict[str, Any]:
    """sha256, epoch, step, kind, ranks and trainable parameters read from the checkpoint."""
    from evalsuite.adapters.loading import load

    ckpt = load(path)
    info = ckpt.info()
    return {"sha256": ckpt.sha256(), **info}


def submit_checkpoint(
    client: ApiClient,
    run: str,
    path: Path,
    *,
    final: bool = False,
    epoch: float | None = None,
    step: int | None = None,
    suites: list[str] | None = None,
    options: dict[str, Any] | None = None,
    new_run: RunFields | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register ``path`` under ``run`` (creating the run from ``new_run`` if needed).

    ``facts`` are ``checkpoint_facts(path)`` read earlier (a training callback hashes the
    checkpoint once, when it is saved, and may send it much later)."""
    path = Path(path).resolve()
    facts = checkpoint_facts(path) if facts is None else facts
    epoch = facts.get("epoch") if epoch is None else epoch
    if epoch is None:
        raise SubmitError(
            f"{path} has no trainer_state.json with an epoch; pass --epoch to say which "
            "epoch this checkpoint is"
        )
    _ensure_run(client, run, facts, new_run)
    body: dict[str, Any] = {
        "epoch": float(epoch),
        "step": facts.get("step") if step is None else step,
        "uri": str(path),
        "sha256": facts["sha256"],
        "final": final,
        "options": options or {},
    }
    if suites:
        body["suites"] = suites
    return client.register_checkpoint(run, **body)


def submit_base(
    client: ApiClient,
    run: str,
    *,
    suites: list[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the (existing) run's base model as its checkpoint of epoch 0; the same base
    again is a no-op, so a training job may ask for it after every epoch."""
    from evalsuite.evaluation.materialize import model_fingerprint
    from evalsuite.models import resolve_base

    where = client.get_run(run).get("base_model_path")
    if not where:
        raise SubmitError(
            f"run {run!r} has no base_model_path, so its base cannot be evaluated as epoch 0; "
            "give it one (--base-model-path)"
        )
    body: dict[str, Any] = {
        "epoch": BASE_EPOCH,
        "uri": BASE_URI,
        "sha256": model_fingerprint(resolve_base(where)),
        "final": False,
        "options": options or {},
    }
    if suites:
        body["suites"] = suites
    return client.register_checkpoint(run, **body)


def _ensure_run(
    client: ApiClient, run: str, facts: dict[str, Any], new_run: RunFields | None
) -> None:
    try:
        client.get_run(run)
        return
    except ApiError as e:
        if e.status != 404:
            raise
    if new_run is None or not (new_run.method and new_run.domain and new_run.base_model):
        raise SubmitError(
            f"run {run!r} does not exist yet; create it by also giving --method, --domain "
            "and --base-model (and --base-model-path where workers find the base)"
        )
    fields = {k: v for k, v in new_run.__dict__.items() if v not in (None, {})}
    fields.setdefault("r", facts.get("r"))
    fields.setdefault("k", facts.get("k"))
    fields.setdefault("alpha", facts.get("alpha"))
    fields["trainable_params"] = facts.get("trainable_params")
    client.create_run(name=run, **{k: v for k, v in fields.items() if v is not None})
