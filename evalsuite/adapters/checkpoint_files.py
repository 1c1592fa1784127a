"""Opening the files a checkpoint directory hands us, without trusting what they claim.

A checkpoint comes from a training job we do not control (a shared cluster, a download), and
``adapter info``, ``merge`` and the worker read it. So before anything is allocated:

- a file must be a regular file (a FIFO would block forever, ``/dev/zero`` never ends);
- in a checkpoint directory (``root``), a symlink may point only inside that directory: one
  leaving it is refused by name, with where it points, instead of silently reading
  ``/etc/passwd`` or another user's file. Base model directories pass no ``root``: a Hugging
  Face cache snapshot is made of symlinks into its ``blobs/`` folder, outside the snapshot;
- a JSON file is read only when ``fstat`` says it is within its cap (``JSON_CAPS``): parsing
  costs several times a file's size in memory, and a sparse 2 GiB ``trainer_state.json``
  costs no disk to make.

The safetensors header is checked against the file in ``safetensors_io.read_header``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from evalsuite.adapters.errors import AdapterError

# Largest JSON file read from a checkpoint or model directory, by file name. Real ones are far
# smaller: a PEFT config is a few KB, a 671B model's shard index about 9 MB, and a
# trainer_state.json logging every step of a 100k-step run about 20 MB.
JSON_CAPS: dict[str, int] = {
    "adapter_config.json": 1 << 20,
    "config.json": 4 << 20,
    "trainer_state.json": 64 << 20,
    "model.safetensors.index.json": 64 << 20,
}
DEFAULT_JSON_CAP = 1 << 20  # any other JSON file read from a checkpoint


def json_cap(path: Path) -> int:
    """The size cap of a JSON file, by its name."""
    return JSON_CAPS.get(path.name, DEFAULT_JSON_CAP)


def present(path: Path) -> bool:
    """The name exists, even as a dangling or escaping symlink (so it is refused, not skipped)."""
    return path.exists() or path.is_symlink()


def confined(path: Path, root: Path | None) -> Path:
    """``path`` with symlinks resolved; with ``root``, refused if it resolves outside ``root``."""
    real = path.resolve()
    if root is None:
        return real
    real_root = root.resolve()
    if real.is_relative_to(real_root):
        return real
    hop = f" -> {os.readlink(path)}" if path.is_symlink() else ""
    raise AdapterError(
        f"{path}{hop}: a symlink that leaves the checkpoint directory {root} (it resolves to "
        f"{real}); refusing to follow it. Copy the file into the checkpoint directory instead"
    )


def open_checked(path: Path, root: Path | None = None) -> IO[bytes]:
    """Open a checkpoint file for reading: confined to ``root``, and a regular file."""
    real = confined(path, root)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (no effect on regular files)
        f = open(path, "rb", opener=lambda _, flags: os.open(real, flags | os.O_NONBLOCK))  # noqa: SIM115
    except OSError as e:
        raise AdapterError(f"{path}: cannot read ({e.strerror})") from e
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise AdapterError(f"{path}: not a regular file; a checkpoint holds plain files")
    return f


def read_capped(path: Path, root: Path | None = None, cap: int | None = None) -> bytes:
    """The bytes of a small file, refused by ``fstat`` before reading when over ``cap``
    (default: ``json_cap(path)``)."""
    cap = json_cap(path) if cap is None else cap
    with open_checked(path, root) as f:
        size = os.fstat(f.fileno()).st_size
        if size > cap:
            raise AdapterError(
                f"{path}: {size:,} bytes, over the {cap:,}-byte cap for {path.name}; this is "
                "not a file a trainer writes. Replace it with the real one (or remove it)"
            )
        try:
            return f.read(cap + 1)[:cap]  # never more than the cap, even if it grew meanwhile
        except OSError as e:
            raise AdapterError(f"{path}: cannot read ({e.strerror})") from e


def read_json(path: Path, root: Path | None = None, fix: str = "fix or remove the file") -> Any:
    """Parse a JSON file of a checkpoint or model directory within its cap; ``fix`` says what
    to do when it is not valid JSON."""
    raw = read_capped(path, root)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise AdapterError(f"{path}: not valid JSON ({e}); {fix}") from e


def read_json_object(path: Path, root: Path | None = None, fix: str = "fix or remove the file"):
    """``read_json`` for files that must hold one JSON object."""
    value = read_json(path, root, fix)
    if not isinstance(value, dict):
        raise AdapterError(f"{path}: expected a JSON object, got {type(value).__name__}; {fix}")
    return value
