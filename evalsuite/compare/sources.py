"""The two sides of ``evalsuite compare``: a checkpoint id, ``RUN@best|@last|@EPOCH`` or a
results directory, each read through the gate's own sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.gate.api_source import ApiSource, Reader
from evalsuite.gate.evidence import GateInputError, Source
from evalsuite.gate.results_dir import ResultsDirSource


class CheckpointSource(ApiSource):
    """One checkpoint of the service by its id: an ``ApiSource`` whose run has only it."""

    def __init__(self, api: Reader, checkpoint_id: int, label: str):
        detail = api.get_checkpoint(checkpoint_id)
        epoch = float(detail.get("epoch") or 0)
        self.api, self.label = api, label
        self.ref = self.name = f"checkpoint {checkpoint_id}"
        self.run, self.selector = detail["run"], f"{epoch:g}"
        self.checkpoints: list[dict[str, Any]] = [detail]
        self._scores = {checkpoint_id: detail.get("scores") or []}
        self._rows = {}


def is_checkpoint_id(ref: str) -> bool:
    return ref.isdigit() and 0 < int(ref) < 2**63  # the store's id range


def open_side(ref: str, label: str, api: Reader | None, allow_dirs: bool = True) -> Source:
    """A results directory (when ``allow_dirs`` and it exists), a checkpoint id, or a run."""
    if allow_dirs and Path(ref).is_dir():
        return ResultsDirSource(ref, label)
    if api is None:
        raise GateInputError(
            f"{label} {ref!r} is not a results directory; a checkpoint id or RUN@sel needs "
            "--api URL (or EVALSUITE_API_URL)"
        )
    if is_checkpoint_id(ref):
        return CheckpointSource(api, int(ref), label)
    return ApiSource(api, ref, label)
