"""RaSA for training, from the paper's definition (ICLR 2025, Section 2), written in the
reference layout that ``evalsuite.adapters.rasa`` reads and merges.

Each target Linear of layer i gets dW_i x = [B_i | B_S] diag(d_i) [A_i ; A_S] x: its own
rank-(r-k) factors A_i, B_i, a pool of L*k ranks A_S, B_S shared by the L layers that carry
the same module type, and a trained diagonal d_i. Initialisation as the paper: Kaiming for
A_i and A_S, zero B_i and B_S, d_i = 0.5*alpha/(r-k) on the own ranks and 0.5*alpha/(L*k)
on the shared ones. PEFT has no RaSA, so the modules are plain torch and saving writes the
reference code's key names and ``adapter_config.json`` itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from evalsuite.adapters.base import PEFT_PREFIX
from evalsuite.adapters.rasa import shared_key
from evalsuite.adapters.safetensors_io import save_tensors


@dataclass(frozen=True)
class RasaSettings:
    r: int
    k: int
    alpha: float
    targets: tuple[str, ...]


class SharedPool(nn.Module):
    """The L*k ranks one module type shares across its layers."""

    def __init__(self, n_layers: int, k: int, in_f: int, out_f: int):
        super().__init__()
        self.A = nn.Parameter(torch.empty(n_layers * k, in_f))
        self.B = nn.Parameter(torch.zeros(out_f, n_layers * k))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # LoRA's Kaiming init of A


class RasaLinear(nn.Module):
    """A frozen Linear plus its RaSA update; the pool is shared, not owned."""

    def __init__(self, base: nn.Linear, pool: SharedPool, own: int, d_own: float, d_shared: float):
        super().__init__()
        self.base = base
        self.pool = [pool]  # a list, so the pool is not registered (saved) once per layer
        self.A = nn.Parameter(torch.empty(own, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, own))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        shared = pool.A.shape[0]
        self.d = nn.Parameter(
            torch.cat([torch.full((own,), d_own), torch.full((shared,), d_shared)])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.pool[0]
        a = torch.cat([self.A, pool.A], 0)
        b = torch.cat([self.B, pool.B], 1)
        return self.base(x) + ((x @ a.t()) * self.d) @ b.t()


def module_type(name: str) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``self_attn.q_proj``."""
    return name.split("layers.", 1)[1].split(".", 1)[1]


def add_rasa(model: nn.Module, settings: RasaSettings) -> dict[str, SharedPool]:
    """Freeze ``model`` and replace its target Linears by RaSA ones; returns the pools by type.

    The pools are registered on the model (``rasa_pools``) so the optimizer and ``.to()``
    see them once."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets: dict[str, list[tuple[str, nn.Linear]]] = {}
    for name, module in model.named_modules():
        is_target = "layers." in name and name.rsplit(".", 1)[-1] in settings.targets
        if isinstance(module, nn.Linear) and is_target:
            targets.setdefault(module_type(name), []).append((name, module))
    if not targets:
        raise ValueError(f"no Linear layer of the model is one of {settings.targets}")
    own = settings.r - settings.k
    pools = nn.ModuleDict()
    for mtype, modules in targets.items():
        n = len(modules)
        first = modules[0][1]
        pool = SharedPool(n, settings.k, first.in_features, first.out_features)
        pools[mtype.replace(".", "__")] = pool
        for name, linear in modules:
            parent_name, attr = name.rsplit(".", 1)
            wrapped = RasaLinear(
                linear,
                pool,
                own,
                0.5 * settings.alpha / max(own, 1),
                0.5 * settings.alpha / (n * settings.k),
            )
            setattr(model.get_submodule(parent_name), attr, wrapped)
    model.add_module("rasa_pools", pools)
    return {k.replace("__", "."): v for k, v in pools.items()}


def rasa_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained factors under the reference code's key names."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, RasaLinear):
            prefix = f"{PEFT_PREFIX}{name}"
            tensors[f"{prefix}.rasa_A.weight"] = module.A.detach()
            tensors[f"{prefix}.rasa_B.weight"] = module.B.detach()
            tensors[f"{prefix}.rasa_mixing.weight"] = module.d.detach()
    for mtype, pool in model.get_submodule("rasa_pools").items():
        tensors[shared_key("A", mtype.replace("__", "."))] = pool.A.detach()
        tensors[shared_key("B", mtype.replace("__", "."))] = pool.B.detach()
    return tensors


def save_rasa(model: nn.Module, out_dir: Path, settings: RasaSettings, base_path: Path) -> None:
    """``adapter_model.safetensors`` + ``adapter_config.json`` as the reference code writes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.float().contiguous().cpu() for k, v in rasa_tensors(model).items()}
    save_tensors(out_dir / "adapter_model.safetensors", tensors)
    config = {
        "base_model_name_or_path": str(Path(base_path).resolve()),
        "task_type": "CAUSAL_LM",
        "peft_type": "RASA",
        "target_modules": list(settings.targets),
        "r": settings.r,
        "rasa_k": settings.k,
        "rasa_alpha": settings.alpha,
        "rasa_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
