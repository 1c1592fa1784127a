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
            )
        if self.kind == "hf":
            from evalsuite.engines.hf import HfEngine

            return HfEngine(
                self.model_dir, self.dtype, self.lora_dir, max_model_len=self.max_model_len
            )
        raise EngineError(f"unresolved engine kind {self.kind!r}")
