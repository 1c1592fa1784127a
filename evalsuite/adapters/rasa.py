"""RaSA (rank-sharing LoRA, ICLR 2025): layer-specific ranks plus a pool shared across layers.

dW_i = [B_i | B_S] diag(d_i) [A_i ; A_S]: layer-specific ranks first, the shared pool of
L*k ranks second, the trained diagonal D between them and no other factor (rasa_alpha only
set D's initial value). The reference code cannot merge; this is the definition it trains.
"""

from __future__ import annotations

import torch

from evalsuite.adapters.base import (
    Adapter,
    LoraFactors,
    check_shape,
    module_type,
    require,
    require_part,
)
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.grouping import group_by_module

_SHARED = ("base_model.rasa_shared_A", "base_model.rasa_shared_B")


def shared_key(side: str, mtype: str) -> str:
    """Key of a module type's shared pool: ``base_model.rasa_shared_A.self_attn__q_proj.weight``."""
    return f"base_model.rasa_shared_{side}.{mtype.replace('.', '__')}.weight"


class RasaAdapter(Adapter):
    kind = "rasa"

    def _parse(self, tensors):
        cfg = self.config
        for field in ("r", "rasa_k"):
            if not isinstance(cfg.get(field), int):
                raise AdapterError(
                    f"{self.path}: adapter_config.json needs an integer {field!r} (RaSA)"
                )
        r, k = cfg["r"], cfg["rasa_k"]
        if not 0 < k <= r:
            raise AdapterError(f"{self.path}: RaSA needs 0 < rasa_k <= r, got r={r}, rasa_k={k}")
        groups, shared = group_by_module(
            tensors,
            ("rasa_A.weight", "rasa_B.weight", "rasa_mixing.weight"),
            self.source,
            self.kind,
            _SHARED,
        )
        per_type: dict[str, list[str]] = {}
        for module in groups:
            per_type.setdefault(module_type(module), []).append(module)
        self._layers_of_type = {t: len(ms) for t, ms in per_type.items()}
        self._parts = {}
        for module, parts in groups.items():
            mtype = module_type(module)
            n_layers = self._layers_of_type[mtype]
            r_eff = r - k + n_layers * k
            a = require_part(parts, module, "rasa_A.weight", self.source, "layer-specific A")
            b = require_part(parts, module, "rasa_B.weight", self.source, "layer-specific B")
            d = require_part(parts, module, "rasa_mixing.weight", self.source, "diagonal D")
            sa_key, sb_key = shared_key("A", mtype), shared_key("B", mtype)
            sa = require(shared, sa_key, self.source, f"shared pool A of {mtype}")
            sb = require(shared, sb_key, self.source, f"shared pool B of {mtype}")
            why = f"r={r}, rasa_k={k}, L={n_layers} layers carry {mtype}"
            check_shape(f"{module}.rasa_A.weight", a, (r - k, None), self.source, why)
            check_shape(f"{module}.rasa_B.weight", b, (None, r - k), self.source, why)
            check_shape(f"{module}.rasa_mixing.weight", d, (r_eff,), self.source, why + ", r-k+L*k")
            check_shape(sa_key, sa, (n_layers * k, a.shape[1]), self.source, why + ", [L*k, in]")
            check_shape(sb_key, sb, (b.shape[0], n_layers * k), self.source, why + ", [out, L*k]")
            self._parts[module] = (a, b, d, sa, sb)
        self._shared = shared
        self._pool_fp32: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def modules(self):
        return list(self._parts)

    @property
    def k(self):
        return self.config["rasa_k"]

    @property
    def alpha(self):
        return self.config.get("rasa_alpha")

    @property
    def scaling(self):
        return 1.0  # D carries the scale; there is no other factor

    @property
    def num_layers(self):
        return max(self._layers_of_type.values())

    def module_rank(self, module):
        return self._parts[module][2].shape[0]

    def expected_shape(self, module):
        a, b, *_ = self._parts[module]
        return (b.shape[0], a.shape[1])

    def mixing(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(d_own, d_shared): the D weights of the layer's own r-k ranks and of the L*k ranks
        of the shared pool, as stored (how much this layer uses the shared ranks)."""
        d = self._parts[module][2]
        own = self.config["r"] - self.k
        return d[:own], d[own:]

    def _shared_fp32(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The module type's shared pool (A_S, B_S) in fp32, converted once per type: every
        layer uses the same pool, only its diagonal D differs (so D is folded per layer)."""
        mtype = module_type(module)
        if mtype not in self._pool_fp32:
            _, _, _, sa, sb = self._parts[module]
            self._pool_fp32[mtype] = (sa.float(), sb.float())
        return self._pool_fp32[mtype]

    def _factors(self, module):
        a, b, d, _, _ = self._parts[module]
        sa, sb = self._shared_fp32(module)
        full_a = d.float().unsqueeze(1) * torch.cat([a.float(), sa], 0)
        full_b = torch.cat([b.float(), sb], 1)
        return full_a, full_b

    def low_rank(self, module, base_shape):
        a, b = self._factors(module)
        return b, a, 1.0

    def delta(self, module, base_shape=None):
        a, b = self._factors(module)
        return b @ a

    def as_lora(self):
        return LoraFactors.uniform({m: self._factors(m) for m in self.modules})

    @property
    def trainable_params(self):
        own = sum(p[0].numel() + p[1].numel() + p[2].numel() for p in self._parts.values())
        return own + sum(t.numel() for t in self._shared.values())
