"""What makes two scores comparable: one definition for the store's ``config_hash`` and the gate.

A score depends on the task's whole configuration (data and prompt by content hash, sampling,
stop strings, scorer and its arguments) and on how the model was served (materialisation,
dtype, engine and its version, the platform it computed on, tensor parallelism); not on where
the task file or the data happened to live, nor on whether the engine was fresh or had the
weights swapped in.

The platform: vLLM's CPU and CUDA builds report the same version but sample differently
(async scheduling and the V2 model runner are on with CUDA, off on the CPU), so a CUDA score
is never compared with a CPU one. Results written before the platform was recorded ran on
the CPU: no platform means ``DEFAULT_PLATFORM``, and the hash of a CPU score leaves the
platform out, so every stored hash keeps its meaning.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DEFAULT_PLATFORM = "cpu"

# Task config fields that say where things were, not what was evaluated: the content they
# point at is covered by data_sha256 / prompt_sha256, and partial covers limit.
_LOCATION_FIELDS = {
    "source",
    "description",
    "data_origin",
    "limit",
    "prompt_file",
    "data.file",
    "data.local",
    "data.hf",
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys, so a mismatch names the exact field."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}{key}.")
        return out  # an empty mapping leaves no key: {} and absent are the same settings
    return {prefix[:-1]: value}


def task_identity(config: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """Fields that must agree: the task's whole config except locations, and how the model
    was materialised, in which dtype and by which engine and engine version (the service's
    ``config_hash`` covers the same, so both modes refuse the same pairs)."""
    config = dict(config)
    identity = {key: config.pop(key, None) for key in ("data_sha256", "prompt_sha256")}
    identity |= {
        f"config.{key}": value
        for key, value in flatten(config).items()
        if key not in _LOCATION_FIELDS and key.split(".", 1)[0] not in _LOCATION_FIELDS
    }
    engine = model.get("engine") or {}
    identity["materialization"] = model.get("materialization")
    identity["dtype"] = model.get("dtype")
    identity["engine"] = engine.get("name") if isinstance(engine, dict) else engine
    identity["engine_version"] = engine.get("version") if isinstance(engine, dict) else None
    platform = engine.get("platform") if isinstance(engine, dict) else None
    identity["platform"] = platform or DEFAULT_PLATFORM
    # tensor parallelism changes the reduction order of every matmul; 1 (or absent, as in
    # results written before it was recorded) adds no key, so those hashes stay as they were
    settings = engine.get("settings") if isinstance(engine, dict) else None
    parallel = (settings or {}).get("tensor_parallel_size") or 1
    if parallel != 1:
        identity["tensor_parallel_size"] = parallel
    return identity


def comparability_hash(config: Any, model: dict[str, Any]) -> str:
    """sha256 of :func:`task_identity`: equal exactly when the gate would compare the scores.

    Stored as each score's ``config_hash`` (the store and API keep that field name).
    ``config`` is a task's config, or for a suite aggregate its {task: metric} recipe.
    """
    config = config if isinstance(config, dict) else {"value": config}
    identity = task_identity(config, model)
    if identity["platform"] == DEFAULT_PLATFORM:  # as hashed before the platform was recorded
        del identity["platform"]
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
