"""The RaSA paper's Section 3.2 on one's own checkpoint: how well can LoRA and RaSA structures
reconstruct the updates of one module type across its L layers?

- LoRA's minimum error at rank r is Eckart-Young's: per layer, the sum of the squared
  singular values after the r-th (the paper's Equation 9).
- RaSA's at (r, k) is approached by the coordinate descent of the paper's Appendix A:
  per layer the top r-k SVD of what the shared part leaves (Eq. 19), then the closed-form
  minimisers of the shared B_S (Eq. 24), A_S (Eq. 25) and each layer's diagonal D_i (Eq. 26).
  It starts from the paper's Theorem 3.1 construction (each layer's components r-k+1..r put
  in the shared pool), whose error is LoRA's; every step minimises exactly over its block,
  so the error never rises and the converged error is at most LoRA's (equal at k=0, where no
  rank is shared).

Everything runs on factored matrices ``M_i = U_i diag(s_i) Vh_i`` in float64: a residual's
SVD is ``factored_svd`` of a [U S | -B_S D] x [Vh ; A_S] product, and errors are traces of
small Gram products, so no step forms an out x in matrix beyond the update's own SVD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evalsuite.adapters.base import module_type
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.loading import Checkpoint, load
from evalsuite.analysis.defaults import DEFAULT_ITERATIONS, DEFAULT_TOL
from evalsuite.analysis.spectrum import factored_svd
from evalsuite.analysis.updates import BaseWeights, Update, iter_updates


@dataclass(frozen=True)
class Layer:
    """One layer's update as ``u @ diag(s) @ vh`` (float64)."""

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor

    @property
    def energy(self) -> float:
        return float(self.s.square().sum())


@dataclass
class Descent:
    """RaSA's coordinate descent at one k: the error after the start and each iteration."""

    k: int
    errors: list[float] = field(default_factory=list)
    fit: RasaFit | None = None  # the final factors

    @property
    def error(self) -> float:
        return self.errors[-1]


def lora_error(layers: list[Layer], r: int) -> float:
    """Eckart-Young: the squared singular values after the r-th, summed over layers."""
    return sum(float(layer.s[r:].square().sum()) for layer in layers)


def _norm2(x: torch.Tensor, y: torch.Tensor) -> float:
    """||x @ y||_F^2 = trace((x^T x)(y y^T)), without forming x @ y."""
    return float(((x.T @ x) * (y @ y.T)).sum())


def _top(x: torch.Tensor, y: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``rank`` factors (b, a) of x @ y (Eckart-Young, via the factored SVD)."""
    svd = factored_svd(x, y)
    return svd.u[:, :rank] * svd.s[:rank], svd.vh[:rank]


def _column(t: torch.Tensor, width: int) -> torch.Tensor:
    """The first ``width`` columns, zero-padded when the update has fewer."""
    if t.shape[1] >= width:
        return t[:, :width]
    return torch.cat([t, t.new_zeros(t.shape[0], width - t.shape[1])], 1)


class RasaFit:
    """State of the descent: per layer B~_i A~_i and d_i, and the shared B_S, A_S."""

    def __init__(self, layers: list[Layer], r: int, k: int):
        self.layers, self.r, self.k = layers, r, k
        n, own = len(layers), r - k
        self.own = [(_column(x.u * x.s, own), _column(x.vh.T, own).T) for x in layers]
        # Theorem 3.1: layer i's components own..r-1 are block i of the shared pool
        self.bs = torch.cat([_column(x.u, r)[:, own:] for x in layers], 1)
        self.as_ = torch.cat([_column(x.vh.T, r)[:, own:].T for x in layers], 0)
        self.d = torch.zeros(n, n * k, dtype=torch.float64)
        for i, x in enumerate(layers):
            sigma = torch.cat([x.s, x.s.new_zeros(max(0, r - len(x.s)))])[own:r]
            self.d[i, i * k : (i + 1) * k] = sigma

    def _rest(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """M_i - B~_i A~_i as factors (the target of the shared part)."""
        x, (b, a) = self.layers[i], self.own[i]
        return torch.cat([x.u * x.s, -b], 1), torch.cat([x.vh, a], 0)

    def error(self) -> float:
        total = 0.0
        for i in range(len(self.layers)):
            x, y = self._rest(i)
            total += _norm2(torch.cat([x, -self.bs * self.d[i]], 1), torch.cat([y, self.as_], 0))
        return total

    def step(self) -> None:
        """One round of Eqs. 19, 24, 25 and 26."""
        own = self.r - self.k
        for i, x in enumerate(self.layers):  # Eq. 19
            shared_b = self.bs * self.d[i]
            self.own[i] = _top(
                torch.cat([x.u * x.s, -shared_b], 1), torch.cat([x.vh, self.as_], 0), own
            )
        if self.k == 0:
            return
        rests = [self._rest(i) for i in range(len(self.layers))]
        # Eq. 24: B_S = (sum_i P_i A_S^T D_i) (sum_i D_i A_S A_S^T D_i)^+
        gram_a = self.as_ @ self.as_.T
        num = sum(x @ (y @ self.as_.T) * d for (x, y), d in zip(rests, self.d, strict=True))
        den = sum(d[:, None] * gram_a * d[None, :] for d in self.d)
        self.bs = num @ torch.linalg.pinv(den, hermitian=True)
        # Eq. 25: A_S = (sum_i D_i B_S^T B_S D_i)^+ (sum_i D_i B_S^T P_i)
        gram_b = self.bs.T @ self.bs
        num = sum(
            d[:, None] * ((self.bs.T @ x) @ y) for (x, y), d in zip(rests, self.d, strict=True)
        )
        den = sum(d[:, None] * gram_b * d[None, :] for d in self.d)
        self.as_ = torch.linalg.pinv(den, hermitian=True) @ num
        # Eq. 26: d_i = (B_S^T B_S o A_S A_S^T)^+ ((B_S^T P_i) o A_S ... ) 1
        hadamard = torch.linalg.pinv(
            (self.bs.T @ self.bs) * (self.as_ @ self.as_.T), hermitian=True
        )
        for i, (x, y) in enumerate(rests):
            target = ((self.bs.T @ x) * (self.as_ @ y.T)).sum(1)
            self.d[i] = hadamard @ target


def rasa_descent(
    layers: list[Layer],
    r: int,
    k: int,
    iterations: int = DEFAULT_ITERATIONS,
    tol: float = DEFAULT_TOL,
) -> Descent:
    """Coordinate descent at (r, k); ``errors[0]`` is the start (LoRA's error), then one
    entry per iteration until the error stops falling by ``tol`` of the total energy."""
    if not 0 <= k <= r:
        raise ValueError(f"need 0 <= k <= r, got r={r}, k={k}")
    fit = RasaFit(layers, r, k)
    energy = sum(x.energy for x in layers) or 1.0
    out = Descent(k, [fit.error()], fit)
    for _ in range(iterations):
        fit.step()
        out.errors.append(fit.error())
        if out.errors[-2] - out.errors[-1] <= tol * energy:
            break
    return out


def layer_of(update: Update, max_rank: int | None) -> Layer:
    """The SVD of one module's update in float64, cut to ``max_rank`` components."""
    if update.dense is None:
        assert update.b is not None and update.a is not None
        svd = factored_svd(update.b.double(), update.a.double(), update.scale)
        u, s, vh = svd.u, svd.s, svd.vh
    else:
        u, s, vh = torch.linalg.svd(update.dense.double(), full_matrices=False)
    keep = len(s) if max_rank is None else min(max_rank, len(s))
    return Layer(u[:, :keep].contiguous(), s[:keep].clone(), vh[:keep].contiguous())


def reconstruct(
    ckpt: Checkpoint | str | Path,
    r: int,
    ks: list[int],
    base: str | Path | None = None,
    types: list[str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    tol: float = DEFAULT_TOL,
    max_rank: int | None = None,
) -> dict[str, Any]:
    """The ``adapter reconstruct --json`` report: per module type LoRA's error at rank r and
    RaSA's descent at each k (errors per iteration), absolute and relative to the energy."""
    if isinstance(ckpt, str | Path):
        ckpt = load(ckpt)
    if max_rank is not None and max_rank < r:
        raise AdapterError(f"--max-rank {max_rank} is below r={r}: nothing left to compare")
    weights = BaseWeights(base) if base is not None else None
    by_type: dict[str, list[Layer]] = {}
    truncated: dict[str, float] = {}
    for update in iter_updates(ckpt, weights, types):
        full = layer_of(update, None) if max_rank is not None else None
        layer = layer_of(update, max_rank)
        mtype = module_type(update.module)
        by_type.setdefault(mtype, []).append(layer)
        truncated[mtype] = truncated.get(mtype, 0.0) + (
            full.energy - layer.energy if full is not None else 0.0
        )
    if types:
        missing = sorted(set(types) - set(by_type))
        if missing:
            raise AdapterError(f"no module of type {missing} in {ckpt.path} ({sorted(by_type)})")
    out: dict[str, Any] = {}
    for mtype, layers in by_type.items():
        energy = sum(x.energy for x in layers) or 1.0
        e_lora = lora_error(layers, r)
        runs = [rasa_descent(layers, r, k, iterations, tol) for k in ks]
        out[mtype] = {
            "layers": len(layers),
            "energy": energy,
            "truncated_energy": truncated[mtype],
            "lora_error": e_lora,
            "lora_relative": e_lora / energy,
            "rasa": [
                {
                    "k": d.k,
                    "error": d.error,
                    "relative": d.error / energy,
                    "iterations": len(d.errors) - 1,
                    "errors": d.errors,
                }
                for d in runs
            ],
        }
    return {
        "path": str(ckpt.path) if ckpt.path else None,
        "kind": ckpt.kind,
        "r": r,
        "ks": ks,
        "max_rank": max_rank,
        "types": out,
        "mean_relative": _mean_relative(out, ks),
    }


def _mean_relative(types: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """Figure 3's numbers: relative errors averaged over module types."""
    if not types:
        return {"lora": None, "rasa": {}}
    n = len(types)
    return {
        "lora": sum(t["lora_relative"] for t in types.values()) / n,
        "rasa": {
            str(k): sum(t["rasa"][j]["relative"] for t in types.values()) / n
            for j, k in enumerate(ks)
        },
    }
