"""The real base model (catalog name smollm2-135m-instruct) on the paper's evaluations.

Forgetting: ARC-Challenge, WinoGrande and HellaSwag through ``evalsuite eval`` (fp32, each
engine given) beside lm-eval run directly (its ``hf`` backend, fp32, its stock task YAML on
files converted here: the same conversion as tests/test_real_forgetting.py), per-document
flips listed, and the model card's published figures as a sanity band. Generation:
HumanEval+ (n=10) and MATH-500 through ``evalsuite eval``, with throughput and the share of
samples that ran to the token limit. Each part writes its own section of bench/RESULTS.md,
so one can be refreshed without the other.

    python bench/real_model.py [--docs N] [--task-docs TASK=N ...] [--engines vllm,hf]
                               [--he-problems N] [--math-problems N] [--max-new-tokens N]
                               [--skip-forgetting] [--skip-generation] [--keep-finished]

Defaults run everything in full (the full HellaSwag alone is hours per route on 2 cores);
the limits make a subset, which the section says.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from results_md import replace_section

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "_work" / "real_model"
EXE = str(Path(sys.executable).with_name("evalsuite"))
NAME = "smollm2-135m-instruct"
FORGETTING_SECTION = "## real model: forgetting (bench/real_model.py)"
GENERATION_SECTION = "## real model: generation (bench/real_model.py)"
HEADLINE = {"arc_challenge": ("acc", "acc_norm"), "winogrande": ("acc",),
            "hellaswag": ("acc", "acc_norm")}  # fmt: skip
# SmolLM2-135M-Instruct's model card (lighteval, 0-shot, its own normalisation)
KEEP_FINISHED = False  # --keep-finished, set by main()
CARD = "model card: HellaSwag 40.9, ARC (average of Easy and Challenge) 37.3"


def evalsuite_eval(out: Path, engine: str, *args: str) -> tuple[dict, float]:
    """``evalsuite eval`` into ``out``: its results and seconds. With --keep-finished a
    finished ``out`` (results.json written) is read back with its own run's timings, so an
    interrupted benchmark resumes without re-timing what the cache answers in no time."""
    if KEEP_FINISHED and (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
        return results, results["timings"]["total_s"]
    started = time.perf_counter()
    done = subprocess.run(
        [EXE, "eval", "--base", NAME, "--data-dir", str(DATA), "--engine", engine,
         "--out", str(out), "--quiet", *args],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads((out / "results.json").read_text()), time.perf_counter() - started


def samples(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]


def direct_lm_eval(model: Path, docs: dict[str, int | None]) -> tuple[dict, float]:
    """lm-eval's own route: the local files in the HF schemas, cut to each task's count."""
    sys.path.insert(0, str(ROOT / "tests"))
    from lm_eval import simple_evaluate
    from test_real_forgetting import hf_schema_files, lm_eval_stock_tasks

    files = hf_schema_files(DATA, WORK / "hf-schema", None)
    for task, (_, path) in files.items():
        if docs[task] is not None:
            kept = path.read_text().splitlines(keepends=True)[: docs[task]]
            path.write_text("".join(kept))
    started = time.perf_counter()
    direct = simple_evaluate(
        model="hf", model_args=f"pretrained={model},dtype=float32,device=cpu",
        tasks=lm_eval_stock_tasks(files), log_samples=True, batch_size=16,
        verbosity="WARNING",
    )  # fmt: skip
    return direct, time.perf_counter() - started


def forgetting(model: Path, docs: dict[str, int | None], engines: list[str]) -> list[str]:
    """Every engine's documents against lm-eval direct: metric, flips, largest ll gap."""
    groups: dict[int | None, list[str]] = {}
    for task, n in docs.items():  # one evalsuite run (one engine start) per document count
        groups.setdefault(n, []).append(task)
    runs: dict[str, dict[str, tuple[Path, dict]]] = {}
    seconds: dict[str, float] = {}
    for engine in engines:
        for n, tasks in groups.items():
            out = WORK / f"forgetting-{engine}-{'-'.join(tasks)}-{n or 'all'}"
            limit = ["--limit", str(n)] if n else []
            ours, took = evalsuite_eval(out, engine, "--tasks", ",".join(tasks), "--dtype",
                                        "float32", *limit)  # fmt: skip
            seconds[engine] = seconds.get(engine, 0.0) + took
            runs.setdefault(engine, {}).update({task: (out, ours) for task in tasks})
    direct, direct_s = direct_lm_eval(model, docs)
    timing = "; ".join(f"{engine} {took:.0f} s" for engine, took in seconds.items())
    lines = [
        f"forgetting: `evalsuite eval --tasks TASK --dtype float32 [--limit N]` per engine "
        f"({timing}) against lm-eval `simple_evaluate(model='hf', dtype=float32, "
        f"batch_size=16)` on its stock YAML over the same documents ({direct_s:.0f} s); {CARD}",
        "",
        "| task | metric | n | lm-eval direct | "
        + " | ".join(f"evalsuite {e} | flips ({e}) | max abs ll diff ({e})" for e in runs)
        + " |",
        "|---|---|---:|---:|" + "---:|---:|---:|" * len(runs),
    ]
    for task, metrics in HEADLINE.items():
        theirs = sorted(direct["samples"][task], key=lambda s: int(s["doc_id"]))
        for metric in metrics:
            ref = direct["results"][task][f"{metric},none"]
            cells = [task, metric, str(len(theirs)), f"{100 * ref:.1f}"]
            for by_task in runs.values():
                out, ours = by_task[task]
                mine = samples(out, task)
                worst = max(
                    abs(a - b[0])
                    for x, y in zip(mine, theirs, strict=True)
                    for a, b in zip(
                        x["details"]["loglikelihoods"], y["filtered_resps"], strict=True
                    )
                )
                flips = [x["doc_id"] for x, y in zip(mine, theirs, strict=True)
                         if x["details"][metric] != y[metric]]  # fmt: skip
                shown = ", ".join(map(str, flips[:8])) + (" ..." if len(flips) > 8 else "")
                value = ours["tasks"][task]["metrics"][metric]["value"]
                flipped = f"{len(flips)}{' (' + shown + ')' if flips else ''}"
                cells += [f"{100 * value:.1f}", flipped, f"{worst:.1e}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def generation(task: str, problems: int | None, engine: str, *args: str) -> str:
    budget = args[args.index("--max-new-tokens") + 1] if "--max-new-tokens" in args else "task"
    dtype = args[args.index("--dtype") + 1]
    out = WORK / f"{task}-{engine}-{dtype}-{problems or 'all'}-tokens-{budget}"
    limit = ["--limit", str(problems)] if problems else []
    results, wall = evalsuite_eval(out, engine, "--tasks", task, *limit, *args)
    rows = samples(out, task)
    tokens = sum(r["num_tokens"] for r in rows)
    at_limit = sum(r["finish_reason"] == "length" for r in rows)
    timing = results["tasks"][task].get("timings", {})
    generate_s = timing.get("generate_s") or wall
    metrics = ", ".join(
        f"{k} {100 * m['value']:.1f}" for k, m in results["tasks"][task]["metrics"].items()
        if "/" not in k and m["value"] is not None
    )  # fmt: skip
    return (
        f"| {task} | {len({r['doc_id'] for r in rows})} | {len(rows)} | {metrics} | "
        f"{tokens} | {generate_s:.0f} | {tokens / generate_s:.1f} | "
        f"{at_limit} ({at_limit / len(rows):.0%}) |"
    )


def header(section: str, model: Path) -> list[str]:
    load = os.getloadavg()
    return [
        section,
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start; "
        f"Python {platform.python_version()}",
        f"- model: {NAME} ({model / 'model.safetensors'}: the Q4_1 GGUF dequantised, bf16)",
        f"- command: `python bench/real_model.py {' '.join(sys.argv[1:])}`",
        "",
    ]


def footer() -> list[str]:
    load = os.getloadavg()
    return ["", f"- load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"]


def task_docs(default: int | None, overrides: list[str]) -> dict[str, int | None]:
    docs: dict[str, int | None] = dict.fromkeys(HEADLINE, default)
    for item in overrides:
        task, _, n = item.partition("=")
        if task not in docs or not n.isdigit():
            sys.exit(f"--task-docs {item!r}: expected TASK=N with TASK one of {list(docs)}")
        docs[task] = int(n)
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="forgetting documents per task")
    parser.add_argument("--task-docs", action="append", default=[], metavar="TASK=N",
                        help="one task's document count, over --docs")  # fmt: skip
    parser.add_argument("--engines", default="vllm", help="evalsuite engines, comma-separated")
    parser.add_argument("--he-problems", type=int, default=None)
    parser.add_argument("--math-problems", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--gen-dtype", default="float32",
                        help="generation dtype (bf16 weights; a CPU without native bf16 "
                        "runs bf16 GEMMs several times slower than fp32)")  # fmt: skip
    parser.add_argument("--skip-forgetting", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--keep-finished", action="store_true",
                        help="read back finished runs (results.json written) instead of "
                        "re-running them")  # fmt: skip
    opts = parser.parse_args()
    global KEEP_FINISHED
    KEEP_FINISHED = opts.keep_finished
    docs = task_docs(opts.docs, opts.task_docs)
    engines = opts.engines.split(",")
    WORK.mkdir(parents=True, exist_ok=True)
    model = Path(subprocess.run([EXE, "models", "get", NAME], capture_output=True, text=True,
                                check=True).stdout.strip())  # fmt: skip
    if not opts.skip_generation:
        extra = ["--max-new-tokens", str(opts.max_new_tokens)] if opts.max_new_tokens else []
        extra += ["--dtype", opts.gen_dtype]
        engine = engines[0]
        lines = [
            *header(GENERATION_SECTION, model),
            f"generation (`evalsuite eval --engine {engine} --dtype {opts.gen_dtype}`"
            f"{', --max-new-tokens ' + str(opts.max_new_tokens) if opts.max_new_tokens else ''}"
            "):",
            "",
            "| task | problems | samples | metrics (%) | output tokens | generate s | tokens/s |"
            " ran to the token limit |",
            "|---|---:|---:|---|---:|---:|---:|---:|",
            generation("humaneval_plus", opts.he_problems, engine, "--n-samples", "10", *extra),
            generation("math500", opts.math_problems, engine, *extra),
            *footer(),
        ]
        replace_section(GENERATION_SECTION, "\n".join(lines) + "\n")
        print("\n".join(lines))
    if not opts.skip_forgetting:
        lines = [*header(FORGETTING_SECTION, model), *forgetting(model, docs, engines),
                 *footer()]  # fmt: skip
        replace_section(FORGETTING_SECTION, "\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
