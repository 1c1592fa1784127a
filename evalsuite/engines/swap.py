"""When new weights may replace a running engine's weights in place, and when not.

A worker keeps its engine across checkpoints of one base and swaps the merged weights in
(``Engine.swap_weights``). That is exact only if the new model is the running one with other
numbers: the same architecture (every field of ``config.json`` that shapes the network), the
same tensor names, shapes and dtypes, and the same tokenizer (the engine keeps the one it
started with). :func:`swap_refusal` checks all three from the files alone, before anything is
written into the engine, and names the first difference, so a refused swap says why.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

from evalsuite.adapters.checkpoint_files import open_checked, read_json_object
from evalsuite.adapters.model_files import TOKENIZER_PATTERNS, read_model_weights

# config.json fields that name or describe a file rather than the network it holds
_NOT_ARCHITECTURE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype"}


@dataclass(frozen=True)
class ModelShape:
    """What must be equal for an in-place swap: architecture, tensors, tokenizer."""

    architecture: dict
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape)
    tokenizer_sha256: str


def model_shape(model_dir: str | Path) -> ModelShape:
    """Read from ``config.json``, the safetensors headers and the tokenizer files only."""
    model_dir = Path(model_dir)
    config = read_json_object(model_dir / "config.json")  # size-capped before it is read
    architecture = {k: v for k, v in config.items() if k not in _NOT_ARCHITECTURE}
    weights = read_model_weights(model_dir)
    tensors = {
        name: (entry.dtype, tuple(entry.shape))
        for entries in weights.entries.values()
        for name, entry in entries.items()
    }
    digest = hashlib.sha256()
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and any(fnmatch.fnmatch(path.name, p) for p in TOKENIZER_PATTERNS):
            digest.update(path.name.encode())
            with open_checked(path) as f:  # streamed: a huge tokenizer file is not held whole
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return ModelShape(architecture, tensors, digest.hexdigest())


def swap_refusal(running: ModelShape, new: ModelShape) -> str | None:
    """None when ``new`` can replace ``running`` in place; else the first difference."""
    for key in sorted(set(running.architecture) | set(new.architecture)):
        was, now = running.architecture.get(key), new.architecture.get(key)
        if was != now:
            return f"config.json {key} is {now!r}, the running model's is {was!r}"
    if running.tokenizer_sha256 != new.tokenizer_sha256:
        return "the tokenizer files differ from the running model's"
    missing = sorted(set(running.tensors) - set(new.tensors))
    extra = sorted(set(new.tensors) - set(running.tensors))
    if missing or extra:
        return f"tensor names differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, (dtype, shape) in running.tensors.items():
        if new.tensors[name] != (dtype, shape):
            return f"tensor {name} is {new.tensors[name]}, the running model's is {(dtype, shape)}"
    return None
