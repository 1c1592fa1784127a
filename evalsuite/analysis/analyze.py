"""``evalsuite adapter analyze``: the spectrum of every module's update, per type and layer.

For each module: the update's Frobenius norm, its leading singular values and the summaries
of ``spectrum.py``; per module type, the same summed or averaged over layers; for RaSA, the
D weights of each layer (its own ranks and the shared pool's). Low-rank kinds are computed
from their factors, the others from the dense update one module at a time (``updates.py``
says which, and the report repeats it under ``reported``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalsuite.adapters.base import CONFIG_FILE, layer_index, module_type, run_checkpoints
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.loading import Checkpoint, load
from evalsuite.analysis.defaults import DEFAULT_TOP
from evalsuite.analysis.spectrum import (
    ENERGY_FRACTION,
    dense_singular_values,
    factored_singular_values,
    spectrum_stats,
)
from evalsuite.analysis.updates import BaseWeights, Update, iter_updates, route_of


def singular_values(update: Update):
    """The update's singular values, from its factors when it has them."""
    if update.dense is not None:
        return dense_singular_values(update.dense)
    assert update.b is not None and update.a is not None
    return factored_singular_values(update.b, update.a, update.scale)


def _rasa_mixing(ckpt: Checkpoint, module: str) -> dict[str, Any]:
    """RaSA: how much this layer weights its own ranks and the shared pool's."""
    d_own, d_shared = ckpt.mixing(module)  # type: ignore[union-attr]
    own2, shared2 = float(d_own.double().square().sum()), float(d_shared.double().square().sum())
    total = own2 + shared2
    return {
        "rasa_d": {
            "own": d_own.double().tolist(),
            "shared": d_shared.double().tolist(),
            "own_norm": math.sqrt(own2),
            "shared_norm": math.sqrt(shared2),
            "shared_fraction": shared2 / total if total else 0.0,
        }
    }


# kind -> more per-module fields
EXTRAS: dict[str, Callable[[Checkpoint, str], dict[str, Any]]] = {"rasa": _rasa_mixing}


def _module_record(ckpt: Checkpoint, update: Update, top: int | None) -> dict[str, Any]:
    s = singular_values(update)
    stats = spectrum_stats(s, update.shape)
    record: dict[str, Any] = {
        "module": update.module,
        "type": module_type(update.module),
        "layer": layer_index(update.module),
        "shape": list(update.shape),
        "frobenius": stats.frobenius,
        "spectral_entropy_rank": stats.spectral_entropy_rank,
        "energy_rank_90": stats.energy_rank_90,
        "numerical_rank": stats.numerical_rank,
        "singular_values": s[:top].tolist() if top else s.tolist(),
    }
    extra = EXTRAS.get(ckpt.kind)
    if extra is not None:
        record.update(extra(ckpt, update.module))
    return record


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _by_type(modules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for m in modules:
        groups.setdefault(m["type"], []).append(m)
    out = {}
    for mtype, ms in groups.items():
        summary: dict[str, Any] = {
            "layers": len(ms),
            "frobenius": math.sqrt(sum(m["frobenius"] ** 2 for m in ms)),
            "mean_frobenius": _mean([m["frobenius"] for m in ms]),
            "max_frobenius": max(m["frobenius"] for m in ms),
            "mean_spectral_entropy_rank": _mean([m["spectral_entropy_rank"] for m in ms]),
            "mean_energy_rank_90": _mean([m["energy_rank_90"] for m in ms]),
            "mean_numerical_rank": _mean([m["numerical_rank"] for m in ms]),
        }
        if all("rasa_d" in m for m in ms):
            summary["mean_shared_fraction"] = _mean([m["rasa_d"]["shared_fraction"] for m in ms])
        out[mtype] = summary
    return out


def analyze(
    ckpt: Checkpoint | str | Path,
    base: str | Path | None = None,
    top: int | None = DEFAULT_TOP,
) -> dict[str, Any]:
    """The ``--json`` report of one checkpoint (``top``: singular values listed per module,
    None for all)."""
    if isinstance(ckpt, str | Path):
        ckpt = load(ckpt)
    route = route_of(ckpt)
    weights = BaseWeights(base) if base is not None else None
    modules = [_module_record(ckpt, u, top) for u in iter_updates(ckpt, weights)]
    return {
        "path": str(ckpt.path) if ckpt.path else None,
        "kind": ckpt.kind,
        "epoch": ckpt.trainer.epoch,
        "reported": route.reported,
        "from_factors": route.from_factors,
        "energy_fraction": ENERGY_FRACTION,
        "by_type": _by_type(modules),
        "modules": modules,
    }


def is_run_dir(path: str | Path) -> bool:
    """A training run (``checkpoint-<step>`` folders inside), not a checkpoint itself."""
    path = Path(path)
    if (path / CONFIG_FILE).exists() or (path / "config.json").exists() or not path.is_dir():
        return False
    return bool(run_checkpoints(path))


def analyze_run(
    run_dir: str | Path, base: str | Path | None = None, top: int | None = DEFAULT_TOP
) -> dict[str, Any]:
    """Every checkpoint of a run in training order: how the spectrum evolves over epochs."""
    checkpoints = run_checkpoints(Path(run_dir))
    if not checkpoints:
        raise AdapterError(f"{run_dir}: no checkpoint-<step> directories in this run")
    return {"run": str(run_dir), "checkpoints": [analyze(c, base, top) for c in checkpoints]}
