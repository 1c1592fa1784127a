"""Merge a checkpoint into its base, streaming: one tensor in memory at a time, fp32 math.

For every base tensor: untouched ones are copied byte for byte (kernel-side); a targeted
module's weight is read, raised to fp32, given the adapter's update, and cast once to the
output dtype. Everything is checked against the base's headers before a byte is written,
and the output directory appears atomically.

Why row blocks: the arithmetic is trivial (a rank-r update), so the cost is memory traffic.
Raising a whole 5632 x 2048 weight to fp32, adding B @ A over it and casting it back walks
three 23-46 MB arrays, far outside any cache. For low-rank kinds each block of rows (about
``ROW_BLOCK_BYTES`` of fp32) is raised, updated (``addmm_`` with that block's rows of B)
cast while it sits in cache, and written straight from cache to its place in the output
file (``pwrite``: no full-size output buffer). Row blocks give each element exactly the
arithmetic of the whole-tensor ``addmm_``, so the result is bitwise the same. Blocks are
shared out over
``merge_threads()`` threads with torch's own intra-op threads held at 1 meanwhile (for ops
this small they cost more than they give), and the next targeted tensor is read while the
current one is computed and written. Kinds that need the whole weight (DoRA's row norms,
MoRA) take the whole-tensor path through ``Adapter.apply_``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    TensorEntry,
    pwrite_all,
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


ROW_BLOCK_BYTES = 1 << 20  # fp32 bytes of one row block: fits a core's L2


def merge_threads() -> int:
    """Threads that share a weight's row blocks: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Scratch:
    """Buffers reused for every merged weight: two read buffers (one being read while the
    other is merged), and per thread one fp32 row block and its cast copy; a whole fp32
    weight and its cast only for kinds that need the whole weight. Fresh full-size tensors
    per weight cost more in page faults than the arithmetic."""

    def __init__(self, threads: int) -> None:
        self.raw = [bytearray(0), bytearray(0)]
        self.blocks = [torch.empty(0, dtype=torch.float32) for _ in range(threads)]
        self.cast: list[dict[torch.dtype, torch.Tensor]] = [{} for _ in range(threads)]
        self.whole = torch.empty(0, dtype=torch.float32)
        self.out: dict[torch.dtype, torch.Tensor] = {}

    @staticmethod
    def _grow(buffer: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        return buffer if buffer.numel() >= n else torch.empty(n, dtype=buffer.dtype)

    def block(self, thread: int, shape: tuple[int, ...]) -> torch.Tensor:
        self.blocks[thread] = self._grow(self.blocks[thread], shape)
        return self.blocks[thread][: math.prod(shape)].view(shape)

    def cast_block(self, thread: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        held = self.cast[thread].get(dtype, torch.empty(0, dtype=dtype))
        self.cast[thread][dtype] = self._grow(held, shape)
        return self.cast[thread][dtype][: math.prod(shape)].view(shape)

    def whole_f32(self, shape: tuple[int, ...]) -> torch.Tensor:
        self.whole = self._grow(self.whole, shape)
        return self.whole[: math.prod(shape)].view(shape)

    def out_view(self, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        if dtype not in self.out or self.out[dtype].numel() < n:
            self.out[dtype] = torch.empty(n, dtype=dtype)
        return self.out[dtype][:n].view(shape)

    def raw_buffer(self, slot: int, nbytes: int) -> bytearray:
        if len(self.raw[slot]) < nbytes:
            self.raw[slot] = bytearray(nbytes)
        return self.raw[slot]


def _bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous tensor, without a copy."""
    return memoryview(t.view(torch.uint8).numpy()).cast("B")


class _Merger:
    """Turns one base weight (any float dtype) into the merged weight in the output dtype."""

    def __init__(self, adapter: Adapter, pool: ThreadPoolExecutor, threads: int) -> None:
        self.adapter, self.pool, self.threads = adapter, pool, threads
        self.scratch = _Scratch(threads)

    def __call__(
        self, module: str, base: torch.Tensor, dtype: torch.dtype, fd: int, offset: int
    ) -> None:
        """Merge ``module`` into ``base`` and write it, cast to ``dtype``, at ``offset``."""
        factors = self.adapter.low_rank(module, tuple(base.shape))
        if factors is None or base.dim() != 2:  # needs the whole weight (DoRA, MoRA, ...)
            weight = self.scratch.whole_f32(tuple(base.shape))
            weight.copy_(base)
            self.adapter.apply_(module, weight)
            out = self.scratch.out_view(dtype, tuple(base.shape))
            out.copy_(weight)
            pwrite_all(fd, _bytes(out), offset)
            return
        b, a, scale = factors
        n_rows, n_cols = base.shape
        rows = max(1, ROW_BLOCK_BYTES // (4 * n_cols))
        starts = list(range(0, n_rows, rows))
        share = -(-len(starts) // self.threads)  # contiguous runs of blocks per thread
        row_bytes = n_cols * dtype.itemsize

        def run(thread: int) -> None:
            for start in starts[thread * share : (thread + 1) * share]:
                stop = min(start + rows, n_rows)
                block = self.scratch.block(thread, (stop - start, n_cols))
                block.copy_(base[start:stop])
                block.addmm_(b[start:stop], a, alpha=scale)
                cast = self.scratch.cast_block(thread, dtype, (stop - start, n_cols))
                cast.copy_(block)  # the one cast to the output dtype, then out while in cache
                pwrite_all(fd, _bytes(cast), offset + start * row_bytes)

        jobs = [self.pool.submit(run, t) for t in range(1, self.threads)]
        run(0)
        for job in jobs:
            job.result()


def _write_shard(
    src: Path,
    entries: dict[str, TensorEntry],
    dst: Path,
    plan: dict[str, str],
    merger: _Merger | None,
    out_dtype: str | None,
    advance,
) -> int:
    specs = []
    for e in entries.values():
        cast = out_dtype is not None and e.dtype in FLOAT_DTYPES
        specs.append(OutputSpec(e.name, out_dtype if cast else e.dtype, e.shape))
    targeted = [e for e in entries.values() if merger is not None and e.name in plan]
    with StreamingWriter(dst, specs) as writer, open(src, "rb") as f:

        def read(i: int) -> Future[torch.Tensor] | None:
            """Start reading the i-th targeted tensor (into the other buffer) in the pool."""
            if merger is None or i >= len(targeted):
                return None
            entry, buffer = targeted[i], merger.scratch.raw_buffer(i % 2, targeted[i].nbytes)
            return merger.pool.submit(read_tensor, f, entry, buffer)

        pending, done = read(0), 0
        try:
            for spec, entry in zip(specs, entries.values(), strict=True):
                if merger is not None and entry.name in plan:
                    assert pending is not None
                    base = pending.result()
                    done += 1
                    pending = read(done)  # overlaps the merge and the write below
                    fd, offset = writer.place(entry.name)
                    merger(plan[entry.name], base, DTYPES[spec.dtype], fd, offset)
                elif spec.dtype == entry.dtype:
                    writer.copy_raw(entry.name, f, entry)
                else:
                    writer.write(entry.name, read_tensor(f, entry).to(DTYPES[spec.dtype]))
                advance(entry.nbytes)
        finally:  # never leave a read running on a file about to be closed
            if pending is not None:
                pending.exception()
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
    if isinstance(ckpt, FullCheckpoint):  # read (and confined to its directory) by load
        source_dir, root, weights, config = ckpt.path, ckpt.path, ckpt.weights, ckpt.config
    else:  # a base may be a Hugging Face cache snapshot: symlinks into its blobs/ folder
        source_dir, root = base_dir, None
        weights, config = read_model_weights(base_dir), read_model_config(base_dir)
    lora = ckpt if isinstance(ckpt, Adapter) else None
    plan = _plan(lora, weights, config) if lora else {}
    result_dtype = out_dtype or _dominant_dtype(weights)
    started = time.perf_counter()
    try:
        with atomic_directory(out_dir, overwrite) as tmp:
            with byte_progress(
                f"merging into {out_dir.name}", weights.total_bytes, progress
            ) as advance:
                total, threads = 0, merge_threads()
                with ThreadPoolExecutor(threads) as pool, _torch_threads(1):
                    merger = _Merger(lora, pool, threads) if lora is not None else None
                    for shard in weights.shards:
                        total += _write_shard(
                            shard,
                            weights.entries[shard],
                            tmp / shard.name,
                            plan,
                            merger,
                            out_dtype,
                            advance,
                        )
            for f in sidecar_files(source_dir, root):
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
