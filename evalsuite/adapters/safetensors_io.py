"""Streaming safetensors reading and writing, one tensor at a time.

Why not ``safetensors.torch.load_file`` / ``save_file``: those hold a whole shard in memory,
and a memory map keeps every page it touched resident. Merging a 70B base must stay within a
few hundred MB, so we parse the header ourselves, read each tensor with a positioned read,
and write the output header first, then each tensor's bytes as soon as it is ready.
Untouched tensors are copied byte-for-byte with ``copy_file_range`` (no Python buffer).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from evalsuite.adapters.checkpoint_files import open_checked
from evalsuite.adapters.errors import AdapterError

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
MAX_HEADER_BYTES = 100_000_000  # safetensors' own cap on the header (MAX_HEADER_SIZE)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives inside a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def read_header(
    path: Path, root: Path | None = None
) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Parse a safetensors header: tensor entries (in file order) and the free-form metadata.

    Everything the header claims is checked against the file before a tensor is read, as
    safetensors itself does (``validate``): a tensor's bytes are then never allocated from a
    size the file does not back. ``root``: the checkpoint directory the file must stay in
    (``checkpoint_files.confined``).
    """
    with open_checked(path, root) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise AdapterError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > MAX_HEADER_BYTES:
                raise AdapterError(
                    f"{path}: not a safetensors file (header of {header_len:,} bytes, over the "
                    f"{MAX_HEADER_BYTES:,}-byte cap safetensors itself sets)"
                )
            if 8 + header_len > size:
                raise AdapterError(
                    f"{path}: header claims {header_len:,} bytes but the file has {size:,}; "
                    "the file is truncated or not safetensors"
                )
            raw = f.read(header_len)
        except OSError as e:
            raise AdapterError(f"{path}: cannot read ({e.strerror})") from e
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise AdapterError(f"{path}: not a safetensors file (header is not JSON: {e})") from e
    except _DuplicateKey as e:
        raise AdapterError(f"{path}: header names tensor {e.args[0]!r} twice") from None
    if not isinstance(header, dict):
        raise AdapterError(f"{path}: not a safetensors file (header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise AdapterError(f"{path}: __metadata__ must map names to strings")
    data_start = 8 + header_len
    entries = [_entry(path, name, info, data_start, size) for name, info in header.items()]
    entries.sort(key=lambda e: (e.start, e.nbytes))
    _check_layout(path, entries, data_start, size)
    return {e.name: e for e in entries}, metadata


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _entry(path: Path, name: str, info: object, data_start: int, size: int) -> TensorEntry:
    """One header entry, checked: known dtype, shape of counts, offsets within the file that
    hold exactly numel x dtype size bytes."""

    def bad(problem: str) -> AdapterError:
        return AdapterError(
            f"{path}: tensor {name!r} {problem}; the file is damaged or not safetensors"
        )

    if not isinstance(info, dict):
        raise bad("has no {dtype, shape, data_offsets} entry")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPES:
        raise AdapterError(
            f"{path}: tensor {name!r} has unsupported dtype {dtype!r}; known: {', '.join(DTYPES)}"
        )
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise bad(f"has shape {shape!r}, not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)):
        raise bad(f"has data_offsets {offsets!r}, not [begin, end] in bytes")
    begin, end = offsets
    data_len = size - data_start
    if begin > end:
        raise bad(f"has data_offsets [{begin}, {end}]: begin after end")
    if end > data_len:
        raise bad(
            f"has data_offsets [{begin:,}, {end:,}] past the end of the data, which holds "
            f"{data_len:,} bytes"
        )
    numel = 1
    for d in shape:
        numel *= d
    expected = numel * DTYPES[dtype].itemsize
    if end - begin != expected:
        raise bad(f"holds {end - begin:,} bytes but shape {shape} of {dtype} needs {expected:,}")
    return TensorEntry(name, dtype, tuple(shape), data_start + begin, end - begin)


def _check_layout(path: Path, entries: list[TensorEntry], data_start: int, size: int) -> None:
    """The tensors, in offset order, cover the data section exactly: no overlap, no gap, no
    trailing bytes (safetensors' own rule)."""
    at, previous = data_start, None
    for e in entries:
        if e.start < at:
            raise AdapterError(
                f"{path}: tensor {e.name!r} overlaps tensor {previous!r}; the file is damaged "
                "or not safetensors"
            )
        if e.start > at:
            raise AdapterError(
                f"{path}: {e.start - at:,} bytes before tensor {e.name!r} belong to no tensor; "
                "the file is damaged or not safetensors"
            )
        at, previous = e.start + e.nbytes, e.name
    if at != size:
        raise AdapterError(
            f"{path}: {size - at:,} bytes after the last tensor belong to no tensor; the file "
            "is damaged or not safetensors"
        )


def read_tensor(f, entry: TensorEntry, buffer: bytearray | None = None) -> torch.Tensor:
    """Read one tensor from an open binary file with a positioned read (no memory map).

    With ``buffer`` (at least ``entry.nbytes`` long) the tensor is a view into it, valid until
    the buffer is reused: the merge reads every weight into one buffer instead of allocating.
    """
    buf = buffer if buffer is not None and len(buffer) >= entry.nbytes else bytearray(entry.nbytes)
    view = memoryview(buf)[: entry.nbytes]
    got = 0
    while got < entry.nbytes:
        n = os.preadv(f.fileno(), [view[got:]], entry.start + got)
        if n == 0:
            raise AdapterError(f"{f.name}: truncated file, tensor {entry.name!r} is cut short")
        got += n
    if entry.nbytes == 0:
        return torch.empty(entry.shape, dtype=DTYPES[entry.dtype])
    return torch.frombuffer(view, dtype=DTYPES[entry.dtype]).reshape(entry.shape)


def iter_tensors(path: Path, root: Path | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for every tensor of a file, one at a time (``root``: as for
    ``read_header``)."""
    entries, _ = read_header(path, root)
    with open_checked(path, root) as f:
        for entry in entries.values():
            yield entry.name, read_tensor(f, entry)


@dataclass(frozen=True)
class OutputSpec:
    """A tensor to be written: its name, dtype name and shape, known before any data."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = DTYPES[self.dtype].itemsize
        for d in self.shape:
            n *= d
        return n


class StreamingWriter:
    """Write a safetensors file whose layout is fixed up front, tensor by tensor, in order."""

    def __init__(self, path: Path, specs: list[OutputSpec], metadata: dict[str, str] | None = None):
        header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
        offset = 0
        for spec in specs:
            header[spec.name] = {
                "dtype": spec.dtype,
                "shape": list(spec.shape),
                "data_offsets": [offset, offset + spec.nbytes],
            }
            offset += spec.nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the format wants the data 8-byte aligned
        self._specs = specs
        self._next = 0
        self._f = open(path, "wb")  # noqa: SIM115 - held across write() calls; see close()
        self._f.write(struct.pack("<Q", len(blob)))
        self._f.write(blob)

    def _expect(self, name: str) -> OutputSpec:
        spec = self._specs[self._next]
        if spec.name != name:
            raise RuntimeError(f"writer expected tensor {spec.name!r} next, got {name!r}")
        self._next += 1
        return spec

    def write(self, name: str, tensor: torch.Tensor) -> None:
        spec = self._expect(name)
        if DTYPE_NAMES[tensor.dtype] != spec.dtype or tuple(tensor.shape) != spec.shape:
            raise RuntimeError(f"tensor {name!r} does not match its declared dtype/shape")
        t = tensor.contiguous()
        if t.numel():
            self._f.write(memoryview(t.view(torch.uint8).numpy()).cast("B"))

    def place(self, name: str) -> tuple[int, int]:
        """(file descriptor, absolute offset) where the caller writes tensor ``name`` itself,
        with ``pwrite_all``, in any order and from any thread; the writer moves past it.
        Every byte must be written before the writer is closed."""
        spec = self._expect(name)
        self._f.flush()
        start = self._f.tell()
        self._f.seek(start + spec.nbytes)
        return self._f.fileno(), start

    def copy_raw(self, name: str, src, entry: TensorEntry) -> None:
        """Copy a tensor's bytes unchanged from an open source file (kernel-side when possible)."""
        self._expect(name)
        self._f.flush()
        remaining, src_pos = entry.nbytes, entry.start
        while remaining:
            try:
                n = os.copy_file_range(src.fileno(), self._f.fileno(), remaining, src_pos)
            except OSError:
                n = 0
            if n == 0:  # not supported across these files: fall back to a buffered copy
                chunk = os.pread(src.fileno(), min(remaining, 64 << 20), src_pos)
                if not chunk:
                    raise AdapterError(f"{src.name}: truncated file at tensor {entry.name!r}")
                self._f.write(chunk)
                self._f.flush()
                n = len(chunk)
            remaining -= n
            src_pos += n
        self._f.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._f.close()
        if self._next != len(self._specs):
            missing = self._specs[self._next].name
            raise RuntimeError(f"writer closed before tensor {missing!r} was written")

    def __enter__(self) -> StreamingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._f.close()


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """``os.pwrite`` until every byte of ``data`` is at ``offset`` (it may write fewer)."""
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def save_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write a small dict of tensors (adapters, test fixtures) through the streaming writer."""
    specs = [OutputSpec(n, DTYPE_NAMES[t.dtype], tuple(t.shape)) for n, t in tensors.items()]
    with StreamingWriter(path, specs, metadata) as writer:
        for name, tensor in tensors.items():
            writer.write(name, tensor)
