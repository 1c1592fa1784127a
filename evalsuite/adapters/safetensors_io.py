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
_MAX_HEADER = 100 * 1024 * 1024


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


def read_header(path: Path) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Parse a safetensors header: tensor entries (in file order) and the free-form metadata."""
    try:
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise AdapterError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > _MAX_HEADER:
                raise AdapterError(f"{path}: not a safetensors file (header of {header_len} bytes)")
            header = json.loads(f.read(header_len))
    except OSError as e:
        raise AdapterError(f"{path}: cannot read ({e.strerror})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"{path}: not a safetensors file (header is not JSON: {e})") from e
    data_start = 8 + header_len
    metadata = header.pop("__metadata__", None) or {}
    entries = []
    for name, info in header.items():
        dtype = info.get("dtype")
        if dtype not in DTYPES:
            raise AdapterError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        begin, end = info["data_offsets"]
        entries.append(
            TensorEntry(name, dtype, tuple(info["shape"]), data_start + begin, end - begin)
        )
    entries.sort(key=lambda e: e.start)
    return {e.name: e for e in entries}, metadata


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


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for every tensor of a file, one at a time."""
    entries, _ = read_header(path)
    with open(path, "rb") as f:
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
