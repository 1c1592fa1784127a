"""Find and describe the weights of a Hugging Face model directory without loading them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalsuite.adapters.checkpoint_files import confined, present, read_json_object
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


def read_model_weights(directory: Path, root: Path | None = None) -> ModelWeights:
    """Shards and headers of a model directory; an AdapterError that says what to do otherwise.

    ``root``: the checkpoint directory every file must stay in (a full fine-tune handed to
    us); None for a base model, whose files may be symlinks into a Hugging Face cache.
    """
    if not directory.is_dir():
        raise AdapterError(f"{directory}: no such model directory")
    index = None
    index_file = directory / INDEX_FILE
    if present(index_file):
        index = read_json_object(index_file, root, "re-save the model")
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(n, str) and n and n == Path(n).name for n in weight_map.values()
        ):
            raise AdapterError(
                f"{index_file}: unreadable shard index (expected a 'weight_map' of tensor "
                "name -> shard file name in this directory); re-save the model"
            )
        names = list(dict.fromkeys(weight_map.values()))
        shards = [directory / n for n in names]
        missing = [s.name for s in shards if not present(s)]
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
    entries = {s: read_header(s, root)[0] for s in shards}
    return ModelWeights(directory, shards, entries, index)


def read_model_config(directory: Path, root: Path | None = None) -> dict:
    """config.json of a model directory ({} when absent, an error when unreadable);
    ``root`` as for ``read_model_weights``."""
    path = directory / "config.json"
    if not present(path):
        return {}
    return read_json_object(path, root, "unreadable model config; re-save the model")


def sidecar_files(directory: Path, root: Path | None = None) -> list[Path]:
    """Config, tokenizer and generation files to copy next to merged weights; ``root`` as
    for ``read_model_weights`` (a link out of a checkpoint is refused, not copied)."""
    found: dict[str, Path] = {}
    for pattern in SIDECAR_PATTERNS:
        for p in directory.glob(pattern):
            if present(p) and confined(p, root).is_file():
                found[p.name] = p
    return [found[n] for n in sorted(found)]
