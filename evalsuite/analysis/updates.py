"""Where one module's update comes from, per checkpoint kind: its factors, or a dense matrix.

A registry (``ROUTES``) says for every kind whether the update is read exactly from low-rank
factors (never forming the out x in matrix) or built densely one module at a time, what the
base model must supply (nothing, the shapes of its weights, or the weights themselves) and
what the reported numbers describe. A new kind is one entry here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from evalsuite.adapters.base import Adapter, layer_index, module_type
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.full import FullCheckpoint
from evalsuite.adapters.loading import Checkpoint
from evalsuite.adapters.model_files import ModelWeights, read_model_weights
from evalsuite.adapters.safetensors_io import FLOAT_DTYPES, read_tensor

# what a kind needs from --base
NOTHING, SHAPES, WEIGHTS = "nothing", "shapes", "weights"


@dataclass(frozen=True)
class Route:
    """How the analysis gets a kind's per-module update."""

    from_factors: bool  # exact from low-rank factors (QR + small SVD), no dense update
    needs_base: str  # NOTHING, SHAPES or WEIGHTS
    reported: str  # what the numbers describe, shown with every report


_FACTORS = "exact, from the low-rank factors (QR of the factors, SVD of the small core)"
ROUTES: dict[str, Route] = {
    "lora": Route(True, NOTHING, f"the update s*B*A; {_FACTORS}"),
    "rslora": Route(True, NOTHING, f"the update s*B*A (s = alpha/sqrt(r)); {_FACTORS}"),
    "adalora": Route(True, NOTHING, f"the update B*(A*E)*alpha/(rank+1e-5); {_FACTORS}"),
    "rasa": Route(
        True, NOTHING, f"the update [B_i | B_S] diag(d_i) [A_i ; A_S]; {_FACTORS}; plus D"
    ),
    "vera": Route(
        True,
        SHAPES,
        f"the update (lambda_b*B)(lambda_d*A), sliced to the base's shapes; {_FACTORS}",
    ),
    "dora": Route(
        False,
        WEIGHTS,
        "merged weight minus base weight (DoRA's per-row rescaling makes the update full "
        "rank); from the dense update, one module at a time",
    ),
    "mora": Route(
        False,
        SHAPES,
        "MoRA's update built from its square matrix at the base's shapes (high rank); from "
        "the dense update, one module at a time",
    ),
    "full": Route(
        False,
        WEIGHTS,
        "fine-tuned weight minus base weight for every 2-D weight inside the transformer "
        "layers (embeddings, head and norms left out); from the dense update, one module at "
        "a time",
    ),
}


@dataclass
class Update:
    """One module's update: ``scale * b @ a`` when ``dense`` is None, else ``dense``."""

    module: str
    shape: tuple[int, int]
    b: torch.Tensor | None = None
    a: torch.Tensor | None = None
    scale: float = 1.0
    dense: torch.Tensor | None = None


class BaseWeights:
    """The base model's safetensors, read one tensor at a time by module name."""

    def __init__(self, directory: Path | str):
        self.weights: ModelWeights = read_model_weights(Path(directory))

    def has(self, module: str) -> bool:
        return self.weights.locate(f"{module}.weight") is not None

    def shape(self, module: str) -> tuple[int, ...]:
        return self._entry(module)[1].shape

    def read(self, module: str) -> torch.Tensor:
        """fp32 weight of one module."""
        shard, entry = self._entry(module)
        if entry.dtype not in FLOAT_DTYPES:
            raise AdapterError(f"{shard}: tensor {entry.name!r} is {entry.dtype}, not a weight")
        with open(shard, "rb") as f:
            return read_tensor(f, entry).to(torch.float32)

    def _entry(self, module: str):
        hit = self.weights.locate(f"{module}.weight")
        if hit is None:
            raise AdapterError(
                f"the base in {self.weights.directory} has no tensor '{module}.weight'; the "
                "checkpoint was made for another base model"
            )
        return hit


def route_of(ckpt: Checkpoint) -> Route:
    route = ROUTES.get(ckpt.kind)
    if route is None:
        raise AdapterError(f"no analysis route for checkpoint kind {ckpt.kind!r}")
    return route


def sort_key(module: str) -> tuple[str, int, str]:
    """Module type first, then layer number (not the string order: 10 after 9)."""
    layer = layer_index(module)
    return (module_type(module), -1 if layer is None else layer, module)


def _full_modules(ckpt: FullCheckpoint) -> list[str]:
    names = []
    for entries in ckpt.weights.entries.values():
        for name, e in entries.items():
            inside = layer_index(name) is not None and name.endswith(".weight")
            if inside and len(e.shape) == 2 and e.dtype in FLOAT_DTYPES:
                names.append(name.removesuffix(".weight"))
    return names


def modules_of(ckpt: Checkpoint) -> list[str]:
    mods = _full_modules(ckpt) if isinstance(ckpt, FullCheckpoint) else ckpt.modules
    return sorted(mods, key=sort_key)


def _shape(ckpt: Checkpoint, module: str, base: BaseWeights | None) -> tuple[int, int]:
    if isinstance(ckpt, FullCheckpoint):
        hit = ckpt.weights.locate(f"{module}.weight")
        assert hit is not None  # modules_of listed it
        return tuple(hit[1].shape)  # type: ignore[return-value]
    if base is not None:
        shape = tuple(base.shape(module))
        if isinstance(ckpt, Adapter):
            ckpt.check_base_shape(module, shape, str(base.weights.directory))
        return shape  # type: ignore[return-value]
    out_f, in_f = ckpt.expected_shape(module)  # type: ignore[union-attr]
    if out_f is None or in_f is None:
        raise AdapterError(f"the shape of {module} is not known without --base")
    return (out_f, in_f)


def iter_updates(
    ckpt: Checkpoint, base: BaseWeights | None, types: list[str] | None = None
) -> Iterator[Update]:
    """Every module's update (of ``types``, default all) in ``sort_key`` order, one at a time
    (a dense one is freed before the next is built)."""
    route = route_of(ckpt)
    if route.needs_base != NOTHING and base is None:
        raise AdapterError(
            f"analysing a {ckpt.kind} checkpoint needs the base model's {route.needs_base} "
            "(--base DIR)"
        )
    for module in modules_of(ckpt):
        if types and module_type(module) not in types:
            continue
        shape = _shape(ckpt, module, base)
        if isinstance(ckpt, FullCheckpoint):
            tuned = _read_full(ckpt, module)
            yield Update(module, shape, dense=tuned.sub_(_base_of(base, module, shape)))
        elif route.from_factors:
            factors = ckpt.low_rank(module, shape)
            if factors is None:
                raise AdapterError(f"{ckpt.kind} gave no low-rank factors for {module}")
            b, a, scale = factors
            yield Update(module, shape, b=b, a=a, scale=scale)
        elif route.needs_base == WEIGHTS:
            weight = _base_of(base, module, shape)
            yield Update(module, shape, dense=ckpt.merged_weight(module, weight).sub_(weight))
        else:
            yield Update(module, shape, dense=ckpt.delta(module, shape))


def _base_of(base: BaseWeights | None, module: str, shape: tuple[int, int]) -> torch.Tensor:
    assert base is not None  # iter_updates checked it
    weight = base.read(module)
    if tuple(weight.shape) != tuple(shape):
        raise AdapterError(
            f"the base's {module}.weight has shape {list(weight.shape)}, the checkpoint's "
            f"{list(shape)}; it was made from another base model"
        )
    return weight


def _read_full(ckpt: FullCheckpoint, module: str) -> torch.Tensor:
    hit = ckpt.weights.locate(f"{module}.weight")
    assert hit is not None  # modules_of listed it
    shard, entry = hit
    with open(shard, "rb") as f:
        return read_tensor(f, entry).to(torch.float32).clone()
