"""What every adapter kind shares: naming, checkpoint metadata and the ``Adapter`` interface.

An adapter is read once into memory (adapters are small next to their base) and answers, per
target module of the base (``model.layers.3.self_attn.q_proj``), what it adds to that
module's weight. The merge streams the base and asks each module in turn.
"""

from __future__ import annotations

import hashlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from evalsuite.adapters.checkpoint_files import present, read_json_object
from evalsuite.adapters.errors import AdapterError

PEFT_PREFIX = "base_model.model."
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def layer_index(module: str) -> int | None:
    """Layer number of a module name (``model.layers.3.mlp.up_proj`` -> 3), None outside layers."""
    m = _LAYER_RE.search(module)
    return int(m.group(1)) if m else None


def module_type(module: str) -> str:
    """The per-layer part of a module name (``model.layers.3.mlp.up_proj`` -> ``mlp.up_proj``)."""
    m = _LAYER_RE.search(module)
    return m.group(2) if m else module


def split_key(key: str, suffixes: tuple[str, ...]) -> tuple[str, str] | None:
    """``base_model.model.<module>.<suffix>`` -> (module, suffix) for a known suffix, else None."""
    if not key.startswith(PEFT_PREFIX):
        return None
    body = key[len(PEFT_PREFIX) :]
    for suffix in suffixes:
        if body.endswith("." + suffix):
            return body[: -len(suffix) - 1], suffix
    return None


# a Hugging Face Trainer's checkpoint directory: run_dir/checkpoint-<global step>
CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)")


def run_checkpoints(run_dir: Path) -> list[Path]:
    """A training run's ``checkpoint-<step>`` directories, in training order."""
    found = [
        (int(m.group(1)), path)
        for path in Path(run_dir).iterdir()
        if path.is_dir() and (m := CHECKPOINT_DIR.fullmatch(path.name))
    ]
    return [path for _, path in sorted(found)]


@dataclass(frozen=True)
class TrainerInfo:
    """Epoch and step of a HF Trainer checkpoint directory (``run/checkpoint-<step>/``)."""

    epoch: float | None
    step: int | None

    @classmethod
    def read(cls, path: Path | None) -> TrainerInfo:
        if path is None:
            return cls(None, None)
        step = None
        m = CHECKPOINT_DIR.fullmatch(path.name)
        if m:
            step = int(m.group(1))
        state_file = path / "trainer_state.json"
        epoch = None
        if present(state_file):  # confined to the checkpoint and size-capped
            state = read_json_object(state_file, path)
            try:
                if state.get("epoch") is not None:
                    epoch = float(state["epoch"])
                if state.get("global_step") is not None:
                    step = int(state["global_step"])
            except (TypeError, ValueError, OverflowError) as e:
                raise AdapterError(
                    f"{state_file}: epoch or global_step is not a number ({e}); fix or remove "
                    "the file"
                ) from e
        return cls(epoch, step)


@dataclass
class LoraFactors:
    """A plain LoRA with the scale folded in: delta(module) = B @ A exactly, one rank for all."""

    rank: int
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module -> (A [rank, in], B [out, rank])

    @classmethod
    def uniform(cls, factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> LoraFactors:
        """Modules of different ranks, zero-padded to the largest: still exact."""
        rank = max(a.shape[0] for a, _ in factors.values())
        return cls(rank, {m: _pad(a, b, rank) for m, (a, b) in factors.items()})

    def padded(self, rank: int) -> LoraFactors:
        """Zero-pad every module to ``rank``; B @ A is unchanged."""
        if rank < self.rank:
            raise AdapterError(f"cannot pad a rank-{self.rank} LoRA down to rank {rank}")
        return LoraFactors(rank, {m: _pad(a, b, rank) for m, (a, b) in self.factors.items()})


def _pad(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    extra = rank - a.shape[0]
    if extra == 0:
        return a, b
    return (
        torch.cat([a, a.new_zeros(extra, a.shape[1])], 0),
        torch.cat([b, b.new_zeros(b.shape[0], extra)], 1),
    )


def directory_sha256(path: Path, files: list[Path]) -> str:
    """Content hash of a checkpoint: names and bytes of the files that define it."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


class Adapter(ABC):
    """One checkpoint of one fine-tuning method, able to say what it adds to each base module.

    Subclasses are built from ``(config, tensors)`` so the same code serves files on disk
    and tensors made on the meta device (parameter counting for 8B shapes in tests).
    """

    kind: ClassVar[str]

    def __init__(
        self,
        config: Mapping[str, Any],
        tensors: Mapping[str, torch.Tensor],
        path: Path | None = None,
        weights_file: str = "adapter_model.safetensors",
    ):
        self.config = dict(config)
        self.path = path
        self.weights_file = weights_file
        self.trainer = TrainerInfo.read(path)
        self._parse(tensors)

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _parse(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Check the tensors against the config and keep what ``delta`` needs."""

    @property
    @abstractmethod
    def modules(self) -> list[str]:
        """Base module names this adapter changes (``model.layers.0.self_attn.q_proj``)."""

    @abstractmethod
    def delta(self, module: str, base_shape: tuple[int, int] | None = None) -> torch.Tensor:
        """fp32 [out, in] update of one module; ``base_shape`` for kinds that need it."""

    @abstractmethod
    def module_rank(self, module: str) -> int:
        """Largest rank the update of this module can have."""

    @property
    @abstractmethod
    def trainable_params(self) -> int:
        """The paper's "# Trainable Param.": what the optimiser updates, frozen parts excluded."""

    # -- shared behaviour ----------------------------------------------------------------
    def low_rank(
        self, module: str, base_shape: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        """(B, A, scale) in fp32 with delta = scale * B @ A, for kinds whose update is low rank;
        lets the merge add it in place with one fused ``addmm_``."""
        return None

    def apply_(self, module: str, weight: torch.Tensor) -> None:
        """Turn an fp32 base weight into the merged weight, in place (no full-size temporaries
        for low-rank kinds)."""
        factors = self.low_rank(module, tuple(weight.shape))
        if factors is None:
            weight.add_(self.delta(module, tuple(weight.shape)))
        else:
            b, a, scale = factors
            weight.addmm_(b, a, alpha=scale)

    def merged_weight(self, module: str, weight: torch.Tensor) -> torch.Tensor:
        """fp32 base weight -> fp32 merged weight, leaving ``weight`` as it was."""
        merged = weight.clone()
        self.apply_(module, merged)
        return merged

    def expected_shape(self, module: str) -> tuple[int | None, int | None]:
        """(out, in) the base weight must have; None where this kind cannot tell."""
        return (None, None)

    def check_base_shape(self, module: str, shape: tuple[int, ...], where: str) -> None:
        """Raise AdapterError when the base tensor cannot take this module's update."""
        out_f, in_f = self.expected_shape(module)
        if (
            len(shape) != 2
            or (out_f is not None and shape[0] != out_f)
            or (in_f is not None and shape[1] != in_f)
        ):
            want = f"[{out_f if out_f is not None else '*'}, {in_f if in_f is not None else '*'}]"
            raise AdapterError(
                f"{where}: base tensor {module}.weight has shape {list(shape)} but the adapter "
                f"({self.source}) expects {want}; was the adapter trained on another base model?"
            )

    def as_lora(self) -> LoraFactors | None:
        """The exact uniform-rank plain LoRA, for kinds where one exists."""
        return None

    @property
    def source(self) -> str:
        return str(self.path / self.weights_file) if self.path else "<in-memory adapter>"

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    @property
    def r(self) -> int | None:
        return self.config.get("r")

    @property
    def k(self) -> int | None:
        return None

    @property
    def alpha(self) -> float | None:
        return self.config.get("lora_alpha")

    @property
    def scaling(self) -> float | None:
        return None

    @property
    def target_modules(self) -> list[str]:
        """Module types touched, e.g. ``['down_proj', 'q_proj', ...]`` (last name part)."""
        return sorted({m.rsplit(".", 1)[-1] for m in self.modules})

    @property
    def num_layers(self) -> int:
        """Number of transformer layers carrying at least one target module."""
        return len({i for m in self.modules if (i := layer_index(m)) is not None})

    @property
    def effective_rank(self) -> int:
        return max((self.module_rank(m) for m in self.modules), default=0)

    def effective_rank_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.modules:
            t = module_type(m)
            out[t] = max(out.get(t, 0), self.module_rank(m))
        return dict(sorted(out.items()))

    def sha256(self) -> str:
        """Content hash of config + weights: a checkpoint's identity in caches and the store."""
        if self.path is None:
            raise AdapterError("an in-memory adapter has no files to hash")
        files = [self.path / CONFIG_FILE, self.path / self.weights_file]
        return directory_sha256(self.path, [f for f in files if f.exists()])

    def info(self) -> dict[str, Any]:
        """The ``evalsuite adapter info --json`` record."""
        return {
            "kind": self.kind,
            "base_model": self.base_model,
            "r": self.r,
            "k": self.k,
            "alpha": self.alpha,
            "scaling": self.scaling,
            "num_layers": self.num_layers,
            "target_modules": self.target_modules,
            "trainable_params": self.trainable_params,
            "effective_rank": self.effective_rank,
            "effective_rank_by_type": self.effective_rank_by_type(),
            "exportable_as_lora": type(self).as_lora is not Adapter.as_lora,
            "epoch": self.trainer.epoch,
            "step": self.trainer.step,
        }


def check_finite(name: str, tensor: torch.Tensor, source: str) -> None:
    """NaN/Inf in an adapter would silently poison every merged weight: refuse them."""
    if tensor.is_meta or not tensor.is_floating_point():
        return
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise AdapterError(
            f"{source}: tensor {name!r} holds {bad} NaN/Inf value(s); the checkpoint is "
            "corrupt or training diverged, pick an earlier checkpoint"
        )


def require(tensors: Mapping[str, torch.Tensor], key: str, source: str, why: str) -> torch.Tensor:
    """Fetch a tensor the adapter cannot do without, or say which one is missing."""
    if key not in tensors:
        raise AdapterError(f"{source}: tensor {key!r} is missing ({why})")
    return tensors[key]


def require_part(
    parts: Mapping[str, torch.Tensor], module: str, suffix: str, source: str, why: str
) -> torch.Tensor:
    """A per-module tensor (``lora_A.weight`` of ``model.layers.0...``), named in full if absent."""
    if suffix not in parts:
        raise AdapterError(f"{source}: tensor '{PEFT_PREFIX}{module}.{suffix}' is missing ({why})")
    return parts[suffix]


def check_shape(
    key: str, tensor: torch.Tensor, expected: tuple[int | None, ...], source: str, why: str
) -> None:
    """Shape check with a message naming the tensor, its shape and what was expected."""
    ok = tensor.dim() == len(expected) and all(
        e is None or e == s for e, s in zip(expected, tensor.shape, strict=False)
    )
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise AdapterError(
            f"{source}: tensor {key!r} has shape {list(tensor.shape)}, expected {want} ({why})"
        )


def rank_scale(alpha: float, r: int, rslora: bool) -> float:
    """LoRA's alpha/r, or RoRA/rsLoRA's alpha/sqrt(r)."""
    return alpha / math.sqrt(r) if rslora else alpha / r
