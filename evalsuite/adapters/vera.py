"""VeRA: frozen shared random projections, trained per-layer scaling vectors.

dW = (lambda_b * B[:out, :]) @ (lambda_d * A[:, :in]), rows scaled elementwise (PEFT's formula).
Only the lambdas are trained; ``vera_A`` / ``vera_B`` must be saved with the adapter.
"""

from __future__ import annotations

from evalsuite.adapters.base import Adapter, check_shape, require, require_part
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.grouping import group_by_module

_A, _B = "base_model.vera_A", "base_model.vera_B"


class VeraAdapter(Adapter):
    kind = "vera"

    def _parse(self, tensors):
        if _A not in tensors and not self.config.get("save_projection", True):
            raise AdapterError(
                f"{self.path}: VeRA adapter saved with save_projection=false, so its frozen "
                "projections vera_A/vera_B are not in the file; re-save it with "
                "save_projection=True"
            )
        groups, shared = group_by_module(
            tensors, ("vera_lambda_b", "vera_lambda_d"), self.source, self.kind, (_A, _B)
        )
        self._vera_a = require(shared, _A, self.source, "VeRA's shared projection A")
        self._vera_b = require(shared, _B, self.source, "VeRA's shared projection B")
        r = self._vera_a.shape[0]
        check_shape(_B, self._vera_b, (None, r), self.source, f"rank {r} from {_A}")
        self._lambdas = {}
        for module, parts in groups.items():
            lb = require_part(parts, module, "vera_lambda_b", self.source, "VeRA output scaling")
            ld = require_part(parts, module, "vera_lambda_d", self.source, "VeRA rank scaling")
            check_shape(f"{module}.vera_lambda_d", ld, (r,), self.source, f"rank {r}")
            if lb.dim() != 1 or lb.shape[0] > self._vera_b.shape[0]:
                raise AdapterError(
                    f"{self.source}: tensor {module}.vera_lambda_b has shape {list(lb.shape)}, "
                    f"expected a vector of at most {self._vera_b.shape[0]} entries"
                )
            self._lambdas[module] = (lb, ld)
        if self.config.get("fan_in_fan_out"):
            raise AdapterError(f"{self.path}: VeRA with fan_in_fan_out is not supported")

    @property
    def modules(self):
        return list(self._lambdas)

    @property
    def alpha(self):
        return None

    def module_rank(self, module):
        return self._vera_a.shape[0]

    def expected_shape(self, module):
        return (self._lambdas[module][0].shape[0], None)

    def check_base_shape(self, module, shape, where):
        super().check_base_shape(module, shape, where)
        if shape[1] > self._vera_a.shape[1]:
            raise AdapterError(
                f"{where}: base tensor {module}.weight has {shape[1]} inputs but VeRA's vera_A "
                f"covers only {self._vera_a.shape[1]}; was the adapter trained on another base?"
            )

    def low_rank(self, module, base_shape):
        if base_shape is None:
            raise AdapterError("VeRA needs the base weight's shape to slice its projections")
        out_f, in_f = base_shape
        lb, ld = self._lambdas[module]
        b = self._vera_b[:out_f].float() * lb.float().unsqueeze(1)
        a = self._vera_a[:, :in_f].float() * ld.float().unsqueeze(1)
        return b, a, 1.0

    def delta(self, module, base_shape=None):
        b, a, _ = self.low_rank(module, base_shape)
        return b @ a

    @property
    def trainable_params(self):
        return sum(lb.numel() + ld.numel() for lb, ld in self._lambdas.values())
