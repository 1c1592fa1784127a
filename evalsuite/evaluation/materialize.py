"""Turn (base, checkpoint) into something an engine can load, cached across runs.

- ``merged`` (default): the checkpoint merged into the base, cached under a key of adapter
  content hash + base fingerprint + dtype, so the next job on it starts at once.
- ``lora``: the checkpoint exported as an exact plain LoRA and served by the engine under a
  name derived from its content hash.
A full fine-tune is its own model; no checkpoint means the base itself. The mode, dtype and
identities are recorded with every score, so served and merged numbers are never mixed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.adapters import Adapter, AdapterError, FullCheckpoint, export_lora, load, merge
from evalsuite.adapters.checkpoint_files import read_capped
from evalsuite.adapters.merge import check_against_base, parse_dtype
from evalsuite.adapters.model_files import read_model_config, read_model_weights
from evalsuite.adapters.safetensors_io import read_header
from evalsuite.dtypes import TORCH_NAMES
from evalsuite.evaluation.options import MATERIALIZE_MODES
from evalsuite.results_schema import Materialization
from evalsuite.settings import cache_root


def model_fingerprint(model_dir: Path) -> str:
    """Identity of a model directory without reading its weights: config and shard headers."""
    weights = read_model_weights(model_dir)
    h = hashlib.sha256(read_capped(model_dir / "config.json"))  # within config.json's cap
    for shard in weights.shards:
        entries, _ = read_header(shard)
        h.update(shard.name.encode())
        h.update(str(shard.stat().st_size).encode())
        h.update(json.dumps([(e.name, e.dtype, e.shape) for e in entries.values()]).encode())
    return h.hexdigest()


def model_dtype(model_dir: Path) -> str:
    """The dtype a model is stored in (its config's), what ``--dtype`` left out means."""
    cfg = read_model_config(model_dir)
    return str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")


@dataclass
class Materialized:
    mode: Materialization
    model_dir: Path
    dtype: str
    identity: str  # part of every resume-cache key
    checkpoint: dict[str, Any] = field(default_factory=dict)
    lora_dir: Path | None = None
    lora_name: str | None = None
    lora_rank: int | None = None
    # the checkpoint as read (for the adapter analysis, so it is not read twice); not recorded
    loaded: Adapter | FullCheckpoint | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        return {
            "materialization": self.mode,
            "model_dir": str(self.model_dir),
            "dtype": self.dtype,
            "lora_dir": str(self.lora_dir) if self.lora_dir else None,
            "lora_name": self.lora_name,
        }


def _checkpoint_record(ckpt: Adapter | FullCheckpoint, sha: str) -> dict[str, Any]:
    return {
        "kind": ckpt.kind,
        "path": str(ckpt.path),
        "sha256": sha,
        "epoch": ckpt.trainer.epoch,
        "step": ckpt.trainer.step,
    }


def materialize(
    base_dir: Path, adapter_dir: Path | None, mode: str = "merged", dtype: str | None = None
) -> Materialized:
    """Check everything, then merge or export (or reuse a cached result)."""
    if mode not in MATERIALIZE_MODES:
        raise AdapterError(
            f"unknown --materialize {mode!r}; choose {' or '.join(MATERIALIZE_MODES)}"
        )
    base_dir = Path(base_dir)
    if not (base_dir / "config.json").is_file():
        raise AdapterError(
            f"{base_dir}: no config.json; --base must be a Hugging Face model directory"
        )
    base_fp = model_fingerprint(base_dir)  # also fails early on a base without weights
    if adapter_dir is None:
        out_dtype = TORCH_NAMES[parse_dtype(dtype)] if dtype else model_dtype(base_dir)
        return Materialized(
            "base",
            base_dir,
            out_dtype,
            f"base:{base_fp}:{out_dtype}",
            {"kind": "base", "path": str(base_dir), "sha256": base_fp},
        )
    ckpt = load(adapter_dir)
    sha = ckpt.sha256()
    record = _checkpoint_record(ckpt, sha)
    if isinstance(ckpt, FullCheckpoint):
        out_dtype = TORCH_NAMES[parse_dtype(dtype)] if dtype else model_dtype(ckpt.path)
        return Materialized(
            "full", ckpt.path, out_dtype, f"full:{sha}:{out_dtype}", record, loaded=ckpt
        )
    check_against_base(ckpt, base_dir)
    out_dtype = TORCH_NAMES[parse_dtype(dtype)] if dtype else model_dtype(base_dir)
    if mode == "lora":
        if ckpt.as_lora() is None:
            raise AdapterError(
                f"{adapter_dir}: a {ckpt.kind} adapter has no exact LoRA form to serve; use "
                "--materialize merged"
            )
        lora_dir = cache_root() / "lora" / sha[:24]
        if not (lora_dir / "export_info.json").is_file():
            _race_safe(
                lambda: export_lora(ckpt, lora_dir, pad_to="auto"), lora_dir, "export_info.json"
            )
        info = json.loads((lora_dir / "export_info.json").read_text())
        return Materialized(
            "lora",
            base_dir,
            out_dtype,
            f"lora:{sha}:{base_fp}:{out_dtype}",
            record,
            lora_dir=lora_dir,
            lora_name=f"{ckpt.kind}-{sha[:12]}",
            lora_rank=info["rank"],
            loaded=ckpt,
        )
    key = hashlib.sha256(f"{sha}:{base_fp}:{out_dtype}".encode()).hexdigest()[:24]
    merged_dir = cache_root() / "merged" / key
    if not (merged_dir / "merge_info.json").is_file():
        _race_safe(
            lambda: merge(base_dir, ckpt, merged_dir, dtype=out_dtype, progress=True),
            merged_dir,
            "merge_info.json",
        )
    return Materialized(
        "merged", merged_dir, out_dtype, f"merged:{sha}:{base_fp}:{out_dtype}", record, loaded=ckpt
    )


def _race_safe(make, out_dir: Path, marker: str) -> None:
    """Another worker may finish the same cache entry first: then use theirs."""
    try:
        make()
    except AdapterError:
        if not (out_dir / marker).is_file():
            raise
