"""Find and describe the weights of a Hugging Face model directory without loading them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.safetensors_io import TensorEntry, read_header

INDEX_FILE = "model.safetensors.index.json"
# The files a tokenizer is read from (a merged model copies them from its base).
TOKENIZER_PATTERNS = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template*",
)
# Everything a server needs beside the weights; copied verbatim into a merged model.
SIDECAR_PATTERNS = (
    "config.json",
    "generation_config.json",
    *TOKENIZER_PATTERNS,
    "preprocessor_config.json",
)


@dataclass
class ModelWeights:
    """The safetensors shards of a model and where each tensor lives."""

    directory: Path
    shards: list[Path]
    entries: dict[Path, dict[str, TensorEntry]]
    index: dict | None  # the parsed index file when the model is sharded

    def locate(self, name: str) -> tuple[Path, TensorEntry] | None:
        for shard in self.shards:
            entry = self.entries[shard].get(name)
            if entry is not None:
                return shard, entry
        return None

    @property
    def num_params(self) -> int:
        return sum(e.numel for entries in self.entries.values() for e in entries.values())

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for entries in self.entries.values() for e in entries.values())


def read_model_weights(directory: Path) -> ModelWeights:
    """Shards and headers of a model directory; an AdapterError that says what to do otherwise."""
    if not directory.is_dir():
        raise AdapterError(f"{directory}: no such model directory")
    index = None
    index_file = directory / INDEX_FILE
    if index_file.is_file():
        try:
            index = json.loads(index_file.read_text())
            names = list(dict.fromkeys(index["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError, AttributeError) as e:
            raise AdapterError(f"{index_file}: unreadable shard index ({e})") from e
        shards = [directory / n for n in names]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise AdapterError(
                f"{index_file}: lists shard(s) {missing} that are not in {directory}"
            )
    else:
        shards = sorted(
            p for p in directory.glob("*.safetensors") if not p.name.startswith("adapter_model")
        )
    if not shards:
        if list(directory.glob("pytorch_model*.bin")):
            raise AdapterError(
                f"{directory}: has only PyTorch .bin weights; convert them to safetensors first "
                "(load with transformers and save_pretrained(..., safe_serialization=True))"
            )
        raise AdapterError(
            f"{directory}: no model weights (*.safetensors) found; point --base at a Hugging "
            "Face model directory with config.json and model*.safetensors"
        )
    entries = {s: read_header(s)[0] for s in shards}
    return ModelWeights(directory, shards, entries, index)


def read_model_config(directory: Path) -> dict:
    """config.json of a model directory ({} when absent, an error when unreadable)."""
    path = directory / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AdapterError(f"{path}: unreadable model config ({e})") from e


def sidecar_files(directory: Path) -> list[Path]:
    """Config, tokenizer and generation files to copy next to merged weights."""
    found: dict[str, Path] = {}
    for pattern in SIDECAR_PATTERNS:
        for p in directory.glob(pattern):
            if p.is_file():
                found[p.name] = p
    return [found[n] for n in sorted(found)]
