"""Full fine-tune checkpoints: a complete model directory, no adapter. Merging passes it through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalsuite.adapters.base import TrainerInfo, directory_sha256
from evalsuite.adapters.model_files import (
    ModelWeights,
    read_model_config,
    read_model_weights,
    sidecar_files,
)


class FullCheckpoint:
    """A fully fine-tuned model (the FFT row of the paper's Table 2)."""

    kind = "full"

    def __init__(self, path: Path):
        self.path = path
        # confined to the checkpoint directory: a link out of it is refused by name
        self.weights: ModelWeights = read_model_weights(path, root=path)
        self.config = read_model_config(path, root=path)
        # an engine serves this directory as it is: its tokenizer and config files, too, must
        # not link out of it
        self.sidecars = sidecar_files(path, root=path)
        self.trainer = TrainerInfo.read(path)

    @property
    def base_model(self) -> str | None:
        return self.config.get("_name_or_path") or None

    @property
    def trainable_params(self) -> int:
        return self.weights.num_params

    @property
    def num_layers(self) -> int | None:
        return self.config.get("num_hidden_layers")

    def sha256(self) -> str:
        files = [*self.weights.shards, self.path / "config.json"]
        return directory_sha256(self.path, [f for f in files if f.exists()])

    def as_lora(self) -> None:
        return None

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base_model": self.base_model,
            "r": None,
            "k": None,
            "alpha": None,
            "scaling": None,
            "num_layers": self.num_layers,
            "target_modules": [],
            "trainable_params": self.trainable_params,
            "effective_rank": None,
            "effective_rank_by_type": {},
            "exportable_as_lora": False,
            "epoch": self.trainer.epoch,
            "step": self.trainer.step,
        }
