"""PEFT LoRA and the variants that keep its two factors: rsLoRA (RoRA), DoRA, AdaLoRA.

dW = s * B @ A with s = alpha/r (LoRA) or alpha/sqrt(r) (rsLoRA, the RoRA scaling);
``rank_pattern`` / ``alpha_pattern`` override r / alpha per module, as in PEFT.
DoRA rescales each output row of W + s B A to a learned magnitude, so its merge needs W.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from evalsuite.adapters.base import (
    Adapter,
    LoraFactors,
    check_shape,
    rank_scale,
    require_part,
)
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.grouping import group_by_module

# Initialisations that rewrite the base weights at init time: their saved factors are relative
# to a residual base we do not have, unless PEFT converted them back on save.
_BASE_REWRITING_INITS = ("pissa", "olora", "corda", "loftq")


def pattern_value(patterns: Mapping[str, object] | None, module: str, default):
    """PEFT's per-module override: the first pattern key matching the end of the module name."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(?:.*\.)?{key}$", module):
            return value
    return default


class LoraAdapter(Adapter):
    """PEFT LoRA (``peft_type: LORA``) and rsLoRA (``use_rslora: true``)."""

    kind = "lora"
    _suffixes: tuple[str, ...] = ("lora_A.weight", "lora_B.weight")

    def _parse(self, tensors):
        cfg = self.config
        init = str(cfg.get("init_lora_weights", True)).lower()
        if any(init.startswith(p) for p in _BASE_REWRITING_INITS):
            raise AdapterError(
                f"{self.path}: adapter_config.json has "
                f"init_lora_weights={cfg['init_lora_weights']!r}; "
                "that initialisation rewrites the base weights, so these factors cannot be merged "
                "into the original base. Re-save with PEFT's "
                "save_pretrained(..., path_initial_model_for_weight_conversion=...) first."
            )
        for flag in ("lora_bias", "use_qalora"):
            if cfg.get(flag):
                raise AdapterError(
                    f"{self.path}: adapter_config.json sets {flag}: true, not supported yet"
                )
        if cfg.get("layer_replication"):
            raise AdapterError(
                f"{self.path}: layer_replication changes the base layout; not supported"
            )
        self.fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
        self.rslora = bool(cfg.get("use_rslora", False))
        groups, _ = group_by_module(tensors, self._suffixes, self.source, self.kind)
        self._a: dict[str, torch.Tensor] = {}
        self._b: dict[str, torch.Tensor] = {}
        self._rank: dict[str, int] = {}
        self._scale: dict[str, float] = {}
        self._extra: dict[str, dict[str, torch.Tensor]] = {}
        r_default = int(cfg.get("r", 8))
        alpha_default = float(cfg.get("lora_alpha", r_default))
        for module, parts in groups.items():
            a = require_part(parts, module, "lora_A.weight", self.source, "LoRA factor A")
            b = require_part(parts, module, "lora_B.weight", self.source, "LoRA factor B")
            r = int(pattern_value(cfg.get("rank_pattern"), module, r_default))
            alpha = float(pattern_value(cfg.get("alpha_pattern"), module, alpha_default))
            why = f"r={r} from adapter_config.json"
            check_shape(f"{module}.lora_A.weight", a, (r, None), self.source, why)
            check_shape(f"{module}.lora_B.weight", b, (None, r), self.source, why)
            self._a[module], self._b[module] = a, b
            self._rank[module] = r
            self._scale[module] = rank_scale(alpha, r, self.rslora)
            self._extra[module] = parts

    @property
    def modules(self):
        return list(self._a)

    @property
    def alpha(self):
        return self.config.get("lora_alpha")

    @property
    def scaling(self):
        values = set(self._scale.values())
        return values.pop() if len(values) == 1 else None

    def module_rank(self, module):
        return self._rank[module]

    def expected_shape(self, module):
        out_f, in_f = self._b[module].shape[0], self._a[module].shape[1]
        return (in_f, out_f) if self.fan_in_fan_out else (out_f, in_f)

    def low_rank(self, module, base_shape):
        b, a = self._b[module].float(), self._a[module].float()
        if self.fan_in_fan_out:  # the base stores W transposed: (B A)^T = A^T B^T
            return a.T, b.T, self._scale[module]
        return b, a, self._scale[module]

    def delta(self, module, base_shape=None):
        b, a, scale = self.low_rank(module, base_shape)
        return (b @ a) * scale

    @property
    def trainable_params(self):
        return sum(self._a[m].numel() + self._b[m].numel() for m in self.modules)

    def as_lora(self):
        if self.fan_in_fan_out:
            return None
        return LoraFactors.uniform(
            {m: (self._a[m].float(), self._b[m].float() * self._scale[m]) for m in self.modules}
        )


class RsLoraAdapter(LoraAdapter):
    """LoRA with the RoRA / rsLoRA scaling alpha/sqrt(r) (``use_rslora: true``)."""

    kind = "rslora"


class DoraAdapter(LoraAdapter):
    """DoRA: W' = m / ||W + s B A||_row * (W + s B A), PEFT's merge, row norms over inputs."""

    kind = "dora"
    _suffixes = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")

    def _parse(self, tensors):
        super()._parse(tensors)
        self._magnitude = {}
        for module, parts in self._extra.items():
            mag = require_part(
                parts, module, "lora_magnitude_vector", self.source, "DoRA magnitude"
            )
            check_shape(
                f"{module}.lora_magnitude_vector",
                mag,
                (self._b[module].shape[0],),
                self.source,
                "one magnitude per output feature",
            )
            self._magnitude[module] = mag
        if self.fan_in_fan_out:
            raise AdapterError(f"{self.path}: DoRA with fan_in_fan_out is not supported")

    def delta(self, module, base_shape=None):
        raise AdapterError(
            "DoRA's update depends on the base weight; use merged_weight(module, W) instead"
        )

    def low_rank(self, module, base_shape):
        return None  # not additive: see apply_

    def apply_(self, module, weight):
        weight.addmm_(self._b[module].float(), self._a[module].float(), alpha=self._scale[module])
        norm = torch.linalg.norm(weight, dim=1)
        weight.mul_((self._magnitude[module].float() / norm).unsqueeze(1))

    @property
    def trainable_params(self):
        return super().trainable_params + sum(v.numel() for v in self._magnitude.values())

    def as_lora(self):
        return None


class AdaLoraAdapter(Adapter):
    """AdaLoRA (SVD form): dW = B @ (A * E) * alpha / (rank + 1e-5), PEFT's formula exactly."""

    kind = "adalora"

    def _parse(self, tensors):
        groups, _ = group_by_module(tensors, ("lora_A", "lora_B", "lora_E"), self.source, self.kind)
        self._parts = {}
        for module, parts in groups.items():
            a = require_part(parts, module, "lora_A", self.source, "AdaLoRA right vectors")
            b = require_part(parts, module, "lora_B", self.source, "AdaLoRA left vectors")
            e = require_part(parts, module, "lora_E", self.source, "AdaLoRA singular values")
            r = a.shape[0]
            check_shape(f"{module}.lora_B", b, (None, r), self.source, f"rank {r} from lora_A")
            check_shape(f"{module}.lora_E", e, (r, 1), self.source, f"rank {r} from lora_A")
            self._parts[module] = (a, b, e)
        if self.config.get("fan_in_fan_out"):
            raise AdapterError(f"{self.path}: AdaLoRA with fan_in_fan_out is not supported")

    @property
    def r(self):
        return self.config.get("init_r", self.config.get("r"))

    @property
    def modules(self):
        return list(self._parts)

    def module_rank(self, module):
        return self._parts[module][0].shape[0]

    def _scale(self, module) -> float:
        alpha = float(self.config.get("lora_alpha", 0) or 0)
        rank = self.module_rank(module)
        return (alpha if alpha > 0 else float(rank)) / (float(rank) + 1e-5)

    def expected_shape(self, module):
        a, b, _ = self._parts[module]
        return (b.shape[0], a.shape[1])

    def low_rank(self, module, base_shape):
        a, b, e = self._parts[module]
        return b.float(), a.float() * e.float(), self._scale(module)

    def delta(self, module, base_shape=None):
        b, a, scale = self.low_rank(module, base_shape)
        return (b @ a) * scale

    @property
    def trainable_params(self):
        return sum(sum(t.numel() for t in p) for p in self._parts.values())
