"""Merge a checkpoint into its base, streaming: one tensor in memory at a time, fp32 math.

For every base tensor: untouched ones are copied byte for byte (kernel-side); a targeted
module's weight is read, raised to fp32, given the adapter's update (``merged_weight``),
and cast once to the output dtype. Everything is checked against the base's headers before
a byte is written, and the output directory appears atomically.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch

from evalsuite import __version__
from evalsuite.adapters.base import Adapter, layer_index
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.full import FullCheckpoint
from evalsuite.adapters.loading import Checkpoint, load
from evalsuite.adapters.model_files import (
    INDEX_FILE,
    ModelWeights,
    read_model_config,
    read_model_weights,
    sidecar_files,
)
from evalsuite.adapters.safetensors_io import (
    DTYPES,
    FLOAT_DTYPES,
    OutputSpec,
    StreamingWriter,
    read_tensor,
)
from evalsuite.atomic import OutputExistsError, atomic_directory
from evalsuite.dtypes import DTYPE_ALIASES, TORCH_NAMES
from evalsuite.evaluation.progress import byte_progress


def parse_dtype(dtype: str | None) -> str | None:
    """'bfloat16' -> 'BF16' (safetensors' name); None keeps each base tensor's own dtype."""
    if dtype is None:
        return None
    try:
        return DTYPE_ALIASES[dtype.lower()]
    except KeyError:
        raise AdapterError(
            f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16"
        ) from None


def _plan(adapter: Adapter, weights: ModelWeights, config: dict) -> dict[str, str]:
    """Base tensor name -> adapter module, after checking every module fits the base."""
    n_layers, hidden = config.get("num_hidden_layers"), config.get("hidden_size")
    for module in adapter.modules:  # the common case first, in the user's words
        in_f = adapter.expected_shape(module)[1]
        if module.endswith("q_proj") and hidden and in_f and in_f != hidden:
            raise AdapterError(
                f"{adapter.source}: adapter was made for a model of hidden size {in_f} "
                f"({module} takes {in_f} inputs) but the base in {weights.directory} has hidden "
                f"size {hidden}; the adapter was made for another base model"
            )
    plan = {}
    for module in adapter.modules:
        name = f"{module}.weight"
        hit = weights.locate(name)
        if hit is None:
            layer = layer_index(module)
            if n_layers is not None and layer is not None and layer >= n_layers:
                raise AdapterError(
                    f"{adapter.source}: adapter has weights for layer {layer} ({module}) but the "
                    f"base in {weights.directory} has {n_layers} layers; the adapter was made for "
                    "another base model"
                )
            raise AdapterError(
                f"{adapter.source}: adapter targets {module}, but the base in "
                f"{weights.directory} has no tensor {name!r}; the adapter was made for another "
                "base model"
            )
        shard, entry = hit
        if entry.dtype not in FLOAT_DTYPES:
            raise AdapterError(f"{shard}: tensor {name!r} is {entry.dtype}; cannot merge into it")
        adapter.check_base_shape(module, entry.shape, str(shard))
        plan[name] = module
    return plan


def check_against_base(adapter: Adapter, base_dir: str | Path) -> None:
    """Everything merge checks before writing, without writing: for LoRA serving."""
    base_dir = Path(base_dir)
    _plan(adapter, read_model_weights(base_dir), read_model_config(base_dir))


class _Scratch:
    """Buffers reused for every merged weight: the read bytes, the fp32 weight, the cast
    output. Fresh full-size tensors per weight cost more in page faults than the arithmetic."""

    def __init__(self) -> None:
        self.raw = bytearray(0)
        self.f32 = torch.empty(0, dtype=torch.float32)
        self.out: dict[torch.dtype, torch.Tensor] = {}

    def f32_view(self, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        if self.f32.numel() < n:
            self.f32 = torch.empty(n, dtype=torch.float32)
        return self.f32[:n].view(shape)

    def out_view(self, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        if dtype not in self.out or self.out[dtype].numel() < n:
            self.out[dtype] = torch.empty(n, dtype=dtype)
        return self.out[dtype][:n].view(shape)

    def raw_buffer(self, nbytes: int) -> bytearray:
        if len(self.raw) < nbytes:
            self.raw = bytearray(nbytes)
        return self.raw


def _write_shard(
    src: Path,
    entries,
    dst: Path,
    plan: dict[str, str],
    adapter: Adapter | None,
    out_dtype: str | None,
    advance,
    scratch: _Scratch,
) -> int:
    specs = []
    for e in entries.values():
        cast = out_dtype is not None and e.dtype in FLOAT_DTYPES
        specs.append(OutputSpec(e.name, out_dtype if cast else e.dtype, e.shape))
    with StreamingWriter(dst, specs) as writer, open(src, "rb") as f:
        for spec, entry in zip(specs, entries.values(), strict=True):
            module = plan.get(entry.name)
            if module is not None and adapter is not None:
                weight = scratch.f32_view(entry.shape)
                weight.copy_(read_tensor(f, entry, scratch.raw_buffer(entry.nbytes)))
                adapter.apply_(module, weight)
                out = scratch.out_view(DTYPES[spec.dtype], entry.shape)
                out.copy_(weight)  # the one cast to the output dtype
                writer.write(entry.name, out)
            elif spec.dtype == entry.dtype:
                writer.copy_raw(entry.name, f, entry)
            else:
                writer.write(entry.name, read_tensor(f, entry).to(DTYPES[spec.dtype]))
            advance(entry.nbytes)
    return sum(s.nbytes for s in specs)


def _dominant_dtype(weights: ModelWeights) -> str:
    sizes: dict[str, int] = {}
    for entries in weights.entries.values():
        for e in entries.values():
            if e.dtype in FLOAT_DTYPES:
                sizes[e.dtype] = sizes.get(e.dtype, 0) + e.nbytes
    return max(sizes, key=sizes.__getitem__) if sizes else "F32"


def merge(
    base_dir: str | Path,
    adapter: str | Path | Checkpoint,
    out_dir: str | Path,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write base + adapter as a plain model directory at ``out_dir``; returns ``out_dir``.

    ``dtype`` casts every floating tensor (default: keep the base's). A full fine-tune
    checkpoint passes through (its own weights, cast if asked); ``base_dir`` is then unused.
    """
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    ckpt = adapter if isinstance(adapter, Adapter | FullCheckpoint) else load(adapter)
    out_dtype = parse_dtype(dtype)
    source_dir = ckpt.path if isinstance(ckpt, FullCheckpoint) else base_dir
    weights = read_model_weights(source_dir)
    config = read_model_config(source_dir)
    lora = ckpt if isinstance(ckpt, Adapter) else None
    plan = _plan(lora, weights, config) if lora else {}
    result_dtype = out_dtype or _dominant_dtype(weights)
    started = time.perf_counter()
    try:
        with atomic_directory(out_dir, overwrite) as tmp:
            with byte_progress(
                f"merging into {out_dir.name}", weights.total_bytes, progress
            ) as advance:
                total, scratch = 0, _Scratch()
                for shard in weights.shards:
                    total += _write_shard(
                        shard,
                        weights.entries[shard],
                        tmp / shard.name,
                        plan,
                        lora,
                        out_dtype,
                        advance,
                        scratch,
                    )
            for f in sidecar_files(source_dir):
                shutil.copy2(f, tmp / f.name)
            if weights.index is not None:
                index = dict(weights.index)
                index["metadata"] = {**index.get("metadata", {}), "total_size": total}
                (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2))
            if out_dtype and (tmp / "config.json").exists():
                cfg = json.loads((tmp / "config.json").read_text())
                for key in ("torch_dtype", "dtype"):
                    if key in cfg or key == "torch_dtype":
                        cfg[key] = TORCH_NAMES[out_dtype]
                (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
            info = {
                "evalsuite_version": __version__,
                "adapter_kind": ckpt.kind,
                "adapter_sha256": ckpt.sha256() if ckpt.path else None,
                "adapter_path": str(ckpt.path) if ckpt.path else None,
                "base_model": config.get("_name_or_path") or str(source_dir),
                "base_dir": str(source_dir.resolve()),
                "dtype": TORCH_NAMES.get(result_dtype, result_dtype),
                "modules_merged": len(plan),
                "epoch": ckpt.trainer.epoch,
                "step": ckpt.trainer.step,
                "seconds": round(time.perf_counter() - started, 3),
            }
            (tmp / "merge_info.json").write_text(json.dumps(info, indent=2))
    except OutputExistsError as e:
        raise AdapterError(str(e)) from None
    except OSError as e:
        raise AdapterError(f"writing {out_dir} failed: {e}; nothing was written") from e
    return out_dir
