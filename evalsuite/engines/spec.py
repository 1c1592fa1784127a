"""Which engine to build, as plain data, so it can be sent to a child process."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from evalsuite.engines.base import Engine, EngineError

ENGINE_KINDS = ("auto", "vllm", "hf")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_kind(kind: str) -> str:
    """'auto' -> 'vllm' when importable, else 'hf'; unknown names are an error."""
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")
    if kind == "auto":
        return "vllm" if vllm_available() else "hf"
    if kind == "vllm" and not vllm_available():
        raise EngineError(
            "engine 'vllm' asked for but vLLM is not installed: pip install 'evalsuite[cpu]' "
            "(CPU build) or 'evalsuite[gpu]', or use --engine hf"
        )
    return kind


def visible_gpus() -> int:
    """GPUs this process may use (``CUDA_VISIBLE_DEVICES`` applies); 0 without CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_parallelism(kind: str, tensor_parallel_size: int) -> None:
    """Refuse, before any engine starts, a tensor-parallel size this machine cannot give."""
    n = tensor_parallel_size
    if n < 1:
        raise EngineError(f"--tensor-parallel-size must be at least 1, not {n}")
    if n == 1:
        return
    if kind != "vllm":
        raise EngineError(
            f"--tensor-parallel-size {n} needs the vllm engine; the {kind} engine runs on 1 device"
        )
    gpus = visible_gpus()
    if gpus == 0:
        raise EngineError(
            f"--tensor-parallel-size {n} asks for {n} GPUs, but 0 are visible (vLLM's CPU build "
            "runs on 1 device): use --tensor-parallel-size 1"
        )
    if n > gpus:
        raise EngineError(
            f"--tensor-parallel-size {n} asks for {n} GPUs, but {gpus} are visible here "
            "(CUDA_VISIBLE_DEVICES decides which): lower it, or give the worker more GPUs"
        )


@dataclass(frozen=True)
class EngineSpec:
    kind: str  # "vllm" or "hf" (resolved)
    model_dir: str
    dtype: str = "float32"
    lora_dir: str | None = None
    lora_name: str | None = None
    lora_rank: int | None = None
    max_model_len: int | None = None
    seed: int = 0
    tensor_parallel_size: int = 1

    def reuse_key(self) -> tuple:
        """Engines built from specs with equal keys differ only in their weights (or served
        LoRA): one can take the other's place by a swap instead of a restart."""
        return (
            self.kind,
            self.dtype,
            self.max_model_len,
            self.seed,
            self.tensor_parallel_size,
            self.lora_dir is not None,
            self.lora_rank,
        )

    def build(self) -> Engine:
        """The engine, in this process."""
        if self.kind == "vllm":
            from evalsuite.engines.vllm import VllmEngine

            return VllmEngine(
                self.model_dir,
                self.dtype,
                self.lora_dir,
                self.lora_name,
                self.lora_rank,
                self.max_model_len,
                self.seed,
                self.tensor_parallel_size,
            )
        if self.kind == "hf":
            from evalsuite.engines.hf import HfEngine

            return HfEngine(
                self.model_dir, self.dtype, self.lora_dir, max_model_len=self.max_model_len
            )
        raise EngineError(f"unresolved engine kind {self.kind!r}")
