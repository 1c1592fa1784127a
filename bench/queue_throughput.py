"""Queue throughput: a worker that keeps its engine against one that starts afresh per job.

One run of ``--epochs`` LoRA checkpoints (a Trainer's ``checkpoint-<step>`` layout) is
registered with a real ``evalsuite api`` (uvicorn, SQLite) and drained by one real
``evalsuite worker --once`` process, in alternating rounds:

* ``fresh``: ``--fresh-engine-per-job``, a new job process (imports) and engine per job;
* ``reuse``: the default, one job host and engine, each next checkpoint swapped in.

Every round starts from an empty database and an empty merge cache, so both modes do the
same work. Per job it reports process start and imports, materialise, engine start or swap,
generate, score, upload (from each job's results.json and the worker's log); per round the
drain time (worker start to exit) and the machine's load. It prints the ratio reuse / fresh
and writes it to this script's section of bench/RESULTS.md. It never asserts.

    python bench/queue_throughput.py [--epochs 6] [--rounds 2] [--engine vllm] [--base DIR|NAME]

``--base`` takes a model directory or a catalog name (``evalsuite models list``); without
it the tiny random test model is built. Tasks: the example suite ``tiny`` (a seeded
sampled generation task and a multiple-choice task).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import replace_section

from evalsuite.client import ApiClient
from evalsuite.settings import environment_for
from evalsuite.testing.checkpoints import EXAMPLE_TASKS, trainer_dir, write_lora
from evalsuite.testing.dashboard_seed import TOKEN, live_api
from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama
from evalsuite.worker.submit import checkpoint_facts

SECTION = "## queue throughput (bench/queue_throughput.py)"
MODES = {"fresh": ["--fresh-engine-per-job"], "reuse": ["--reuse-engine"]}
UPLOAD = re.compile(r"job (\d+): finished, \d+ samples uploaded in ([\d.]+) s")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def make_run(root: Path, base: Path, epochs: int) -> list[Path]:
    return [
        write_lora(trainer_dir(root / "run", 10 * e, float(e)), base, TARGET_MODULES, seed=e)
        for e in range(1, epochs + 1)
    ]


def drain(mode: str, base: Path, checkpoints: list[Path], engine: str, scratch: Path) -> dict:
    """One round: a fresh database, cache and work directory; returns its figures."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = {**os.environ, **environment_for(cache_dir=scratch / "cache")}
    with live_api(scratch / "queue.db") as url:
        with ApiClient(url, token=TOKEN) as client:
            client.create_run(
                name="bench", method="lora", r=8, domain="code", base_model="bench",
                base_model_path=str(base),
            )  # fmt: skip
            for ckpt in checkpoints:
                facts = checkpoint_facts(ckpt)
                client.register_checkpoint(
                    "bench", epoch=facts["epoch"], step=facts["step"], uri=str(ckpt),
                    sha256=facts["sha256"], suites=["tiny"],
                )  # fmt: skip
        command = [
            sys.executable, "-m", "evalsuite.cli", "worker", "--api", url, "--token", TOKEN,
            "--engine", engine, "--task-dir", str(EXAMPLE_TASKS), "--once", "--poll", "0.2",
            "--work-dir", str(scratch / "jobs"), *MODES[mode],
        ]  # fmt: skip
        before = load()
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    uploads = {int(m.group(1)): float(m.group(2)) for m in UPLOAD.finditer(done.stderr)}
    jobs = []
    for job_dir in sorted(scratch.glob("jobs/job-*"), key=lambda p: int(p.name.split("-")[1])):
        results = json.loads((job_dir / "results.json").read_text())
        t = results["timings"]
        tasks = results["tasks"].values()
        jobs.append(
            {
                "process": t.get("process_start_s", 0.0),
                "materialize": t["materialize_s"],
                "engine": t.get("engine_start_s", 0.0) + t.get("engine_swap_s", 0.0),
                "how": results["model"]["engine"]["lifecycle"]["how"],
                "generate": sum(r["timings"].get("generate_s", 0.0) for r in tasks),
                "loglikelihood": sum(r["timings"].get("loglikelihood_s", 0.0) for r in tasks),
                "score": sum(r["timings"].get("score_s", 0.0) for r in tasks),
                "upload": uploads.get(int(job_dir.name.split("-")[1]), float("nan")),
                "total": t["total_s"],
            }
        )
    return {"mode": mode, "wall": wall, "jobs": jobs, "load": f"{before} | {load()}"}


PHASES = ("process", "materialize", "engine", "generate", "loglikelihood", "score", "upload")


def median_jobs(rounds: list[dict], mode: str, first: bool) -> dict[str, float]:
    """Median per phase over the mode's rounds: the first job of each round, or the rest."""
    rows = [
        j for r in rounds if r["mode"] == mode for j in (r["jobs"][:1] if first else r["jobs"][1:])
    ]
    return {p: statistics.median(j[p] for j in rows) for p in PHASES} if rows else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode, alternating")
    parser.add_argument("--engine", default="vllm", help="vllm or hf")
    parser.add_argument("--base", help="model directory or catalog name (default: tiny model)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    if args.base:
        from evalsuite.models import resolve_base

        base, label = Path(resolve_base(args.base)), args.base
    else:
        base, label = build_tiny_llama(work / "base"), "tiny random Llama (3 layers, hidden 64)"
    checkpoints = make_run(work, base, args.epochs)
    rounds = []
    for _ in range(args.rounds):
        for mode in ("fresh", "reuse"):
            figures = drain(mode, base, checkpoints, args.engine, work / "round")
            rounds.append(figures)
            print(
                f"{mode}: {figures['wall']:.1f} s for {len(figures['jobs'])} jobs "
                f"(load {figures['load']})"
            )
    shutil.rmtree(work, ignore_errors=True)

    # one section per base: the tiny model's and each named base's figures stand side by side
    section = SECTION if not args.base else f"{SECTION[:-1]}, --base {args.base})"
    wall = {m: statistics.median(r["wall"] for r in rounds if r["mode"] == m) for m in MODES}
    ratio = wall["reuse"] / wall["fresh"]
    start = median_jobs(rounds, "fresh", first=False)["engine"]
    swap = median_jobs(rounds, "reuse", first=False)["engine"]
    lines = [
        section,
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()} (other agents may share these cores)",
        f"- base: {label}; engine: {args.engine}; {args.epochs} LoRA epoch checkpoints of one run, "
        "suite `tiny` (tiny_gen: 12 prompts x 4 seeded samples; tiny_mc: 8 questions)",
        f"- {args.rounds} alternating rounds per mode, each from an empty database, merge cache "
        "and work directory; load average before | after each round: "
        + " ; ".join(f"{r['mode']} {r['load']}" for r in rounds),
        "",
        "| mode | drain s (median) | every round s |",
        "|---|---:|---|",
    ]
    for mode in MODES:
        each = ", ".join(f"{r['wall']:.1f}" for r in rounds if r["mode"] == mode)
        lines.append(f"| {mode} | {wall[mode]:.1f} | {each} |")
    lines += [
        "",
        "Per job, median seconds (jobs 2..N of each round; the first job of a round starts its "
        "engine in both modes):",
        "",
        "| mode | " + " | ".join(PHASES) + " |",
        "|---|" + "---:|" * len(PHASES),
    ]
    for mode in MODES:
        med = median_jobs(rounds, mode, first=False)
        lines.append(f"| {mode} | " + " | ".join(f"{med[p]:.2f}" for p in PHASES) + " |")
    lines += [
        "",
        f"- reuse / fresh drain time: **{ratio:.2f}x** (goal at most 0.40x)",
        f"- swap / fresh engine start: **{swap / start:.3f}x** ({swap:.2f} s vs {start:.2f} s; "
        "goal at most 0.10x)",
        "",
        f"Command: `python bench/queue_throughput.py --epochs {args.epochs} --rounds {args.rounds} "
        f"--engine {args.engine}{' --base ' + args.base if args.base else ''}`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(section, text)


if __name__ == "__main__":
    main()
