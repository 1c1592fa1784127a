"""``load(path)``: detect the kind of a checkpoint directory and read it.

A registry maps ``peft_type`` (and, for LoRA, its flags) to an Adapter class, so a new method
is one entry here and one module beside this file, never another branch elsewhere.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from evalsuite.adapters.base import CONFIG_FILE, WEIGHT_FILES, Adapter
from evalsuite.adapters.checkpoint_files import confined, open_checked, present, read_json_object
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.full import FullCheckpoint
from evalsuite.adapters.lora import AdaLoraAdapter, DoraAdapter, LoraAdapter, RsLoraAdapter
from evalsuite.adapters.mora import MoraAdapter
from evalsuite.adapters.rasa import RasaAdapter
from evalsuite.adapters.safetensors_io import iter_tensors
from evalsuite.adapters.vera import VeraAdapter

Checkpoint = Adapter | FullCheckpoint


def _lora_variant(config: Mapping[str, Any]) -> type[Adapter]:
    if config.get("use_mora"):
        return MoraAdapter
    if config.get("use_dora"):
        return DoraAdapter
    if config.get("use_rslora"):
        return RsLoraAdapter
    return LoraAdapter


# peft_type -> the class, or a function of the config that picks one
ADAPTER_TYPES: dict[str, type[Adapter] | Callable[[Mapping[str, Any]], type[Adapter]]] = {
    "LORA": _lora_variant,
    "ADALORA": AdaLoraAdapter,
    "VERA": VeraAdapter,
    "RASA": RasaAdapter,
}


def adapter_class(config: Mapping[str, Any], where: str = "adapter_config.json") -> type[Adapter]:
    peft_type = config.get("peft_type")
    entry = ADAPTER_TYPES.get(str(peft_type).upper()) if peft_type else None
    if entry is None:
        known = ", ".join(sorted(ADAPTER_TYPES))
        what = f"peft_type {peft_type!r}" if peft_type else "no 'peft_type'"
        raise AdapterError(f"{where}: {what}; supported peft_type values: {known}")
    return entry if isinstance(entry, type) else entry(config)


def adapter_from_state(
    config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], path: Path | None = None
) -> Adapter:
    """Build an adapter from a config dict and tensors (files, or meta tensors for counting)."""
    return adapter_class(config)(config, tensors, path)


def _read_config(path: Path) -> dict[str, Any]:
    return read_json_object(path / CONFIG_FILE, path, "re-save the adapter")


def _read_tensors(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    for name in WEIGHT_FILES:
        file = path / name
        if not present(file):
            continue
        if name.endswith(".safetensors"):
            return name, dict(iter_tensors(file, path))
        _check_torch_zip(file, path)
        try:
            return name, torch.load(confined(file, path), map_location="cpu", weights_only=True)
        except Exception as e:  # torch.load's errors have no common type
            raise AdapterError(f"{file}: cannot read adapter weights ({e})") from e
    raise AdapterError(
        f"{path}: adapter_config.json is there but no adapter weights "
        f"({' or '.join(WEIGHT_FILES)}); the checkpoint was not fully written"
    )


def _check_torch_zip(file: Path, root: Path) -> None:
    """Before ``torch.load``: the zip format ``torch.save`` writes, every record stored
    uncompressed within the file. torch allocates each storage from its record's size, so a
    deflated record (a zip bomb) or the legacy format (sizes from the pickle) could claim any
    amount of memory."""
    with open_checked(file, root) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            with zipfile.ZipFile(f) as archive:
                records = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise AdapterError(
                f"{file}: not a torch.save zip archive ({e}); re-save the adapter as "
                "adapter_model.safetensors (save_pretrained(..., safe_serialization=True))"
            ) from e
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED or record.file_size > size:
            raise AdapterError(
                f"{file}: record {record.filename!r} is compressed or larger than the file; "
                "torch.save writes neither. Re-save the adapter as adapter_model.safetensors"
            )


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory: a PEFT-style adapter, or a full fine-tune (passed through)."""
    path = Path(path)
    if path.is_file() and path.name == CONFIG_FILE:
        path = path.parent
    if not path.is_dir():
        raise AdapterError(f"{path}: no such checkpoint directory")
    if not present(path / CONFIG_FILE):
        if present(path / "config.json"):
            return FullCheckpoint(path)
        raise AdapterError(
            f"{path}: no {CONFIG_FILE} (adapter) and no config.json (full model); expected a "
            "training checkpoint directory such as run/checkpoint-500/"
        )
    config = _read_config(path)
    cls = adapter_class(config, str(path / CONFIG_FILE))
    weights_file, tensors = _read_tensors(path)
    return cls(config, tensors, path, weights_file)
