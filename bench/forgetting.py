"""The forgetting suite through evalsuite versus lm-eval's own hf backend, in one run.

Route A: ``evalsuite.evaluation.runner.evaluate`` on the three forgetting tasks: one engine
start (one model load) shared by all three, through the lm-eval bridge.
Route B: ``lm_eval.simple_evaluate(model="hf", ...)`` once per task, as a user running
lm-eval per benchmark does: the model is loaded by each invocation.
Both use the same merged tiny model, the same lm-eval task definitions on the local data and
the same fixed subset (the first --limit documents of each task). Prints the ratio B / A and
the share of each route spent loading the model, and writes them to bench/RESULTS.md.

    python bench/forgetting.py [--limit 200] [--engine hf|vllm]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from results_md import replace_section

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "_work"
TASKS = ("hellaswag", "winogrande", "arc_challenge")
SECTION = "## forgetting (bench/forgetting.py)"


def build_checkpoint() -> tuple[Path, Path]:
    from evalsuite.testing.checkpoints import trainer_dir, write_rasa
    from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama

    base = WORK / "tiny-base"
    if not (base / "config.json").exists():
        build_tiny_llama(base)
    ckpt = trainer_dir(WORK / "tiny-run", step=10, epoch=1.0)
    write_rasa(ckpt, base, TARGET_MODULES, r=8, k=2, std=0.05, seed=1)
    return base, ckpt


def route_evalsuite(base: Path, ckpt: Path, limit: int, engine: str) -> tuple[float, dict]:
    from evalsuite.evaluation.runner import EvalOptions, evaluate

    out = Path(tempfile.mkdtemp(prefix="forgetting-", dir=WORK))
    started = time.perf_counter()
    results = evaluate(
        EvalOptions(
            base=base,
            adapter=ckpt,
            out=out,
            suite="forgetting",
            engine=engine,
            limit=limit,
            data_dir=DATA,
            progress=False,
        )
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(out)
    return elapsed, results


def route_lm_eval(merged: Path, limit: int) -> tuple[float, float, dict]:
    """Per-task simple_evaluate with lm-eval's hf model; also times one model load alone."""
    from lm_eval import simple_evaluate
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    from evalsuite.tasks.lm_eval_tasks import lm_eval_config
    from evalsuite.tasks.registry import TaskRegistry

    registry = TaskRegistry()
    args = f"pretrained={merged},dtype=float32,device=cpu"
    started = time.perf_counter()
    HFLM(pretrained=str(merged), dtype="float32", device="cpu")
    load_s = time.perf_counter() - started
    scores, started = {}, time.perf_counter()
    for name in TASKS:
        task = ConfigurableTask(config=lm_eval_config(registry.tasks[name], DATA)[0])
        out = simple_evaluate(
            model="hf",
            model_args=args,
            tasks=[task],
            limit=limit,
            batch_size=8,
            verbosity="WARNING",
        )
        scores[name] = out["results"][name]
    return time.perf_counter() - started, load_s, scores


def write_section(text: str) -> None:
    """Replace this script's section of RESULTS.md, keeping the others."""
    replace_section(SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="documents per task")
    parser.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    opts = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the benchmark data in {DATA}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    WORK.mkdir(parents=True, exist_ok=True)
    base, ckpt = build_checkpoint()
    load_avg = os.getloadavg()[0]

    a_s, results = route_evalsuite(base, ckpt, opts.limit, opts.engine)
    merged = Path(results["model"]["model_dir"])
    b_s, load_s, direct = route_lm_eval(merged, opts.limit)
    a_load = results["timings"]["engine_start_s"]
    same = all(
        results["tasks"][t]["metrics"][m]["value"] == direct[t][f"{m},none"]
        for t in TASKS
        for m in results["tasks"][t]["metrics"]
    )
    lines = [
        SECTION,
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"load average {load_avg:.1f} at start; Python {platform.python_version()}",
        f"- workload: first {opts.limit} documents of each of {', '.join(TASKS)} (local data), "
        f"tiny merged RaSA model; evalsuite engine: {opts.engine}",
        "",
        "| route | wall s | model loading s | loading share |",
        "|---|---:|---:|---:|",
        f"| evalsuite (1 engine start, 3 tasks) | {a_s:.1f} | {a_load:.1f} | {a_load / a_s:.0%} |",
        f"| lm-eval hf, one invocation per task | {b_s:.1f} | {3 * load_s:.1f} (3 x "
        f"{load_s:.2f}) | {3 * load_s / b_s:.0%} |",
        "",
        f"- ratio lm-eval / evalsuite: **{b_s / a_s:.2f}**; identical metrics: {same}",
        "- evalsuite's wall time includes materialising (a cached merge), the engine child "
        "process start and its imports; lm-eval's includes building each task.",
        f"- command: `python bench/forgetting.py --limit {opts.limit} --engine {opts.engine}`",
        "",
    ]
    print("\n".join(lines))
    write_section("\n".join(lines))


if __name__ == "__main__":
    main()
