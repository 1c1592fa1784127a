"""Two workers on one CPU machine: each pinned to cores of its own (``worker --cpus``, what
``evalsuite demo`` does) against both sharing every core (``--share-cores``).

    .venv/bin/python bench/worker_pinning.py --trained /tmp/demo [--rounds 2]

The workload is the demo's scoring stage on the real model (12 checkpoint jobs: HumanEval+
and MATH demo problems, 25 documents of each forgetting task; vLLM CPU, bf16): each run is
``evalsuite demo --no-serve`` in a fresh directory holding a copy of the runs already trained
under ``--trained`` (a finished demo directory), so only scoring is timed. The merged weights
are in the cache after the first run, so every run after the first finds them there; the
first run is a warm-up and is not counted. Rounds alternate the order (pinned, shared, then
shared, pinned); the machine's load average is recorded before each run. It never asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import replace_section

SECTION = "## worker pinning (bench/worker_pinning.py)"
MODES = {"pinned": ["--pin-workers"], "shared": ["--share-cores"]}
EXE = str(Path(sys.executable).with_name("evalsuite"))


def scoring_run(trained: Path, mode: str, scratch: Path) -> float:
    root = scratch / f"demo-{mode}-{time.monotonic_ns()}"
    root.mkdir(parents=True)
    shutil.copytree(trained / "runs", root / "runs")
    started = time.perf_counter()
    subprocess.run([EXE, "demo", "--no-serve", "--dir", str(root), *MODES[mode]],
                   check=True, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    shutil.rmtree(root)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trained", type=Path, required=True, help="a finished demo directory")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (args.trained / "runs").is_dir():
        sys.exit(f"{args.trained} holds no runs/: run `evalsuite demo --no-serve --dir DIR` first")
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    loads: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        print("warm-up (merges into the cache)...", flush=True)
        scoring_run(args.trained, "pinned", Path(scratch))
        for r in range(args.rounds):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
            for mode in order:
                loads[mode].append(os.getloadavg()[0])
                walls[mode].append(scoring_run(args.trained, mode, Path(scratch)))
                print(f"round {r + 1} {mode}: {walls[mode][-1]:.1f} s "
                      f"(load before {loads[mode][-1]:.1f})", flush=True)  # fmt: skip
    best = {m: min(v) for m, v in walls.items()}
    per_round = [p / s for p, s in zip(walls["pinned"], walls["shared"], strict=True)]
    lines = [
        SECTION,
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{os.cpu_count()} cores; command: `python bench/worker_pinning.py --trained DIR "
        f"--rounds {args.rounds}`",
        "- workload: `evalsuite demo --no-serve` scoring stage (12 jobs on 2 workers, "
        "smollm2-135m-instruct, vLLM CPU bf16; trained runs copied in, merges cached)",
        "",
        "| workers | each round, wall s | load before each | best wall s |",
        "|---|---|---|---:|",
    ]
    for mode in MODES:
        lines.append(
            f"| {mode} | {', '.join(f'{w:.1f}' for w in walls[mode])} | "
            f"{', '.join(f'{x:.1f}' for x in loads[mode])} | {best[mode]:.1f} |"
        )
    lines += [
        "",
        f"- pinned / shared: best/best **{best['pinned'] / best['shared']:.2f}x**; per round "
        + ", ".join(f"{x:.2f}x" for x in per_round),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(SECTION, text)


if __name__ == "__main__":
    main()
