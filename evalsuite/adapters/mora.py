"""MoRA (high-rank updating with one square matrix), types 6 (RoPE-based) and 1 (sharing).

As trained by the RaSA repo's PEFT fork: ``peft_type: LORA`` with ``use_mora: true``; one
n x n matrix M per module stored as ``lora_A`` (``lora_B`` is the same tensor), n =
int(sqrt((in+out)*r)+0.5), rounded down to even for type 6; no scaling.

Type 6: pad the input by wrapping (x ++ x[:pad]), cut it into chunks of n, rotate chunk i by
RoPE at position i, apply M to each chunk, concatenate and tile to the output size. So
dW[o, :] = W_p[o mod P, :] with W_p the block diagonal of M R_i (padding columns folded back).
Type 1: sum the chunks, apply M, tile the output.
"""

from __future__ import annotations

import math

import torch

from evalsuite.adapters.base import Adapter, check_shape, require_part
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.grouping import group_by_module

SUPPORTED_TYPES = (1, 6)


def mora_size(in_f: int, out_f: int, r: int, mora_type: int) -> int:
    """Side n of MoRA's square matrix for a module of this shape."""
    n = int(math.sqrt((in_f + out_f) * r) + 0.5)
    return n // 2 * 2 if mora_type == 6 else n


def _rope_tables(n: int, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, n, 2).float() / n))
    freqs = torch.outer(torch.arange(blocks).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def type6_delta(m: torch.Tensor, in_f: int, out_f: int) -> torch.Tensor:
    n = m.shape[0]
    blocks = math.ceil(in_f / n)
    padded = blocks * n
    cos, sin = _rope_tables(n, blocks)
    rotated = torch.cat((m[:, n // 2 :], -m[:, : n // 2]), dim=1)
    w = torch.zeros(padded, in_f)
    cols = torch.arange(padded) % in_f  # wrapped padding: position p reads input p mod in_f
    for i in range(blocks):
        block = m * cos[i] + rotated * sin[i]
        w[i * n : (i + 1) * n].index_add_(1, cols[i * n : (i + 1) * n], block)
    return w[torch.arange(out_f) % padded]


def type1_delta(m: torch.Tensor, in_f: int, out_f: int) -> torch.Tensor:
    n = m.shape[0]
    padded = math.ceil(in_f / n) * n
    positions = torch.arange(padded)
    w = torch.zeros(n, in_f)
    w.index_add_(1, positions % in_f, m[:, positions % n])
    return w[torch.arange(out_f) % n]


class MoraAdapter(Adapter):
    kind = "mora"

    def _parse(self, tensors):
        self.mora_type = int(self.config.get("mora_type", 1))
        if self.mora_type not in SUPPORTED_TYPES:
            raise AdapterError(
                f"{self.path}: mora_type {self.mora_type} is not supported (supported: "
                f"{', '.join(map(str, SUPPORTED_TYPES))}); the RaSA paper uses type 6"
            )
        groups, _ = group_by_module(
            tensors, ("lora_A.weight", "lora_B.weight"), self.source, self.kind
        )
        self._m = {}
        for module, parts in groups.items():
            m = require_part(parts, module, "lora_A.weight", self.source, "MoRA square matrix")
            check_shape(
                f"{module}.lora_A.weight",
                m,
                (m.shape[0], m.shape[0]),
                self.source,
                "MoRA's matrix is square",
            )
            if "lora_B.weight" in parts and not torch.equal(parts["lora_B.weight"], m):
                raise AdapterError(
                    f"{self.source}: {module}.lora_B.weight differs from lora_A.weight; in MoRA "
                    "they are one tensor, so this file was not written by MoRA"
                )
            self._m[module] = m

    @property
    def modules(self):
        return list(self._m)

    @property
    def scaling(self):
        return 1.0

    @property
    def alpha(self):
        return None

    def module_rank(self, module):
        return self._m[module].shape[0]

    def check_base_shape(self, module, shape, where):
        super().check_base_shape(module, shape, where)
        want = mora_size(shape[1], shape[0], int(self.config.get("r", 8)), self.mora_type)
        have = self._m[module].shape[0]
        if want != have:
            raise AdapterError(
                f"{where}: base tensor {module}.weight has shape {list(shape)}, which gives a "
                f"MoRA matrix of side {want} at r={self.config.get('r')}, but the adapter "
                f"({self.source}) has side {have}; was it trained on another base model?"
            )

    def delta(self, module, base_shape=None):
        if base_shape is None:
            raise AdapterError("MoRA needs the base weight's shape to build its update")
        out_f, in_f = base_shape
        build = type6_delta if self.mora_type == 6 else type1_delta
        return build(self._m[module].float(), in_f, out_f)

    @property
    def trainable_params(self):
        return sum(m.numel() for m in self._m.values())
