"""bf16 on a CPU without bf16 instructions: the runner warns before the engine starts, names
``--dtype float32``, and still runs in the dtype asked for (the dtype is part of what makes
scores comparable, so it is never switched silently).

The CPU's flags are injected, so the verdicts do not depend on the machine the tests run on.
"""

from __future__ import annotations

import platform
import warnings

import pytest

from evalsuite.engines import cpu_dtype
from evalsuite.engines.cpu_dtype import SlowDtypeWarning, bf16_advice, cpu_flags
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.testing.checkpoints import EXAMPLE_TASKS

AVX2 = frozenset({"fpu", "sse2", "avx", "avx2", "fma"})  # this project's CI machine: no bf16


def test_advice_only_for_bf16_on_a_cpu_without_it():
    advice = bf16_advice("bfloat16", AVX2)
    assert advice is not None and "--dtype float32" in advice
    assert bf16_advice("bf16", AVX2) == advice
    assert bf16_advice("bfloat16", AVX2 | {"avx512_bf16"}) is None
    assert bf16_advice("bfloat16", AVX2 | {"amx_bf16"}) is None
    assert bf16_advice("float32", AVX2) is None
    assert bf16_advice("float16", AVX2) is None
    assert bf16_advice("bfloat16", None) is None  # flags unknown: no guess


def test_flags_come_from_the_first_cpu_in_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(info) == {"fpu", "avx2", "amx_bf16"}
    info.write_text("processor\t: 0\nmodel name\t: no flags line\n")
    assert cpu_flags(info) is None
    assert cpu_flags(tmp_path / "missing") is None
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")  # x86 flag names only
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2\n")
    assert cpu_flags(info) is None


@pytest.mark.parametrize(
    ("dtype", "flags", "warned"),
    [
        ("bfloat16", AVX2, True),
        ("bfloat16", AVX2 | {"avx512_bf16"}, False),
        ("float32", AVX2, False),
    ],
)
def test_the_runner_warns_before_an_emulated_bf16_engine_starts(
    tiny_base, tmp_path, monkeypatch, dtype, flags, warned
):
    import torch

    monkeypatch.setattr(cpu_dtype, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the engine is on the CPU
    options = EvalOptions(
        base=tiny_base, out=tmp_path / "out", tasks=["tiny_mc"], engine="hf", dtype=dtype,
        task_dirs=[EXAMPLE_TASKS], progress=False,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = evaluate(options)
    slow = [w for w in caught if issubclass(w.category, SlowDtypeWarning)]
    assert len(slow) == (1 if warned else 0), [str(w.message) for w in caught]
    assert results["model"]["dtype"] == dtype  # run in the dtype asked for, warned or not


@pytest.mark.parametrize(
    ("flags", "asked", "chosen"),
    [
        (AVX2, None, "float32"),  # emulated bf16: the demo scores in float32 and says so
        (AVX2 | {"amx_bf16"}, None, "bfloat16"),  # native bf16: the base's own dtype
        (AVX2, "bfloat16", "bfloat16"),  # --dtype wins
    ],
)
def test_the_demo_scores_a_bf16_base_in_float32_only_where_bf16_is_emulated(
    tmp_path, monkeypatch, flags, asked, chosen
):
    import torch
    from rich.console import Console

    from evalsuite.demo.run import DemoOptions, scoring_dtype

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama", "dtype": "bfloat16"}')
    monkeypatch.setattr(cpu_dtype, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    console = Console(record=True, width=200)
    opts = DemoOptions(root=tmp_path / "demo", engine="hf", dtype=asked)
    assert scoring_dtype(opts, base, console) == chosen
    said = console.export_text()
    assert ("no bf16 instructions" in said) == (asked is None and chosen == "float32"), said
