"""Group a PEFT state dict by target module, refusing tensors no kind knows how to merge."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from evalsuite.adapters.base import PEFT_PREFIX, check_finite, split_key
from evalsuite.adapters.errors import AdapterError


def group_by_module(
    tensors: Mapping[str, torch.Tensor],
    suffixes: tuple[str, ...],
    source: str,
    kind: str,
    global_keys: Iterable[str] = (),
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """(per-module tensors by suffix, global tensors). Unknown keys are an error, never ignored:
    a silently skipped tensor (an embedding LoRA, ``modules_to_save``) would make the merge wrong.
    """
    wanted_global = set(global_keys)
    modules: dict[str, dict[str, torch.Tensor]] = {}
    shared: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        check_finite(key, tensor, source)
        if key in wanted_global or any(key.startswith(g + ".") for g in wanted_global):
            shared[key] = tensor
            continue
        hit = split_key(key, suffixes)
        if hit is None:
            hint = ""
            if "modules_to_save" in key or not key.startswith(PEFT_PREFIX):
                hint = " (fully trained modules / modules_to_save are not supported yet)"
            elif "embedding" in key:
                hint = " (LoRA on embeddings is not supported yet)"
            raise AdapterError(
                f"{source}: tensor {key!r} is not part of a {kind} adapter on linear layers{hint}; "
                f"expected keys like '{PEFT_PREFIX}<module>.{suffixes[0]}'"
            )
        module, suffix = hit
        modules.setdefault(module, {})[suffix] = tensor
    if not modules:
        raise AdapterError(
            f"{source}: no {kind} tensors found (expected keys ending in {suffixes})"
        )
    return dict(sorted(modules.items())), shared
