"""The real base model (catalog name smollm2-135m-instruct) on the paper's evaluations.

Forgetting: ARC-Challenge, WinoGrande and HellaSwag through ``evalsuite eval`` (fp32, the
engine given) beside lm-eval run directly (its ``hf`` backend, fp32, its stock task YAML on
files converted here: the same conversion as tests/test_real_forgetting.py), per-document
flips listed, and the model card's published figures as a sanity band. Generation:
HumanEval+ (n=10) and MATH-500 through ``evalsuite eval``, with throughput and the share of
samples that ran to the token limit. Writes its section of bench/RESULTS.md.

    python bench/real_model.py [--docs N] [--he-problems N] [--math-problems N]
                               [--engine vllm|hf] [--skip-forgetting] [--skip-generation]

Defaults run everything in full (hours on 2 cores); the limits make a subset, which the
section says.
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
SECTION = "## real model (bench/real_model.py)"
HEADLINE = {"arc_challenge": ("acc", "acc_norm"), "winogrande": ("acc",),
            "hellaswag": ("acc", "acc_norm")}  # fmt: skip
# SmolLM2-135M-Instruct's model card (lighteval, 0-shot, its own normalisation)
CARD = "model card: HellaSwag 40.9, ARC (average of Easy and Challenge) 37.3"


def evalsuite_eval(out: Path, engine: str, *args: str) -> tuple[dict, float]:
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


def forgetting(model: Path, docs: int | None, engine: str) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from lm_eval import simple_evaluate
    from test_real_forgetting import hf_schema_files, lm_eval_stock_tasks

    out = WORK / f"forgetting-{engine}-{docs or 'all'}"
    limit = ["--limit", str(docs)] if docs else []
    ours, ours_s = evalsuite_eval(out, engine, "--suite", "forgetting", "--dtype", "float32",
                                  *limit)  # fmt: skip
    started = time.perf_counter()
    direct = simple_evaluate(
        model="hf", model_args=f"pretrained={model},dtype=float32,device=cpu",
        tasks=lm_eval_stock_tasks(hf_schema_files(DATA, WORK / "hf-schema", docs)),
        log_samples=True, batch_size=16, verbosity="WARNING",
    )  # fmt: skip
    direct_s = time.perf_counter() - started
    lines = [
        f"forgetting: `evalsuite eval --suite forgetting --engine {engine} --dtype float32"
        f"{' --limit ' + str(docs) if docs else ''}` ({ours_s:.0f} s) against lm-eval "
        f"`simple_evaluate(model='hf', dtype=float32, batch_size=16)` on its stock YAML over "
        f"the same documents ({direct_s:.0f} s); {CARD}",
        "",
        "| task | metric | n | evalsuite | lm-eval direct | flips | max abs loglikelihood diff |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task, metrics in HEADLINE.items():
        mine = samples(out, task)
        theirs = sorted(direct["samples"][task], key=lambda s: int(s["doc_id"]))
        worst = max(
            abs(a - b[0])
            for x, y in zip(mine, theirs, strict=True)
            for a, b in zip(x["details"]["loglikelihoods"], y["filtered_resps"], strict=True)
        )
        for metric in metrics:
            flips = [x["doc_id"] for x, y in zip(mine, theirs, strict=True)
                     if x["details"][metric] != y[metric]]  # fmt: skip
            value = ours["tasks"][task]["metrics"][metric]["value"]
            ref = direct["results"][task][f"{metric},none"]
            shown = ", ".join(map(str, flips[:8])) + (" ..." if len(flips) > 8 else "")
            lines.append(
                f"| {task} | {metric} | {len(mine)} | {100 * value:.1f} | {100 * ref:.1f} | "
                f"{len(flips)}{' (' + shown + ')' if flips else ''} | {worst:.1e} |"
            )
    return lines


def generation(task: str, problems: int | None, engine: str, *args: str) -> str:
    out = WORK / f"{task}-{engine}-{problems or 'all'}"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=None, help="forgetting documents per task")
    parser.add_argument("--he-problems", type=int, default=None)
    parser.add_argument("--math-problems", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--skip-forgetting", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    opts = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    model = Path(subprocess.run([EXE, "models", "get", NAME], capture_output=True, text=True,
                                check=True).stdout.strip())  # fmt: skip
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start (other agents' "
        f"tests and benchmarks were running on this machine: timings are not quiet-machine "
        f"figures); Python {platform.python_version()}",
        f"- model: {NAME} ({model / 'model.safetensors'}: the Q4_1 GGUF dequantised, bf16)",
        f"- command: `python bench/real_model.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    if not opts.skip_forgetting:
        lines += [*forgetting(model, opts.docs, opts.engine), ""]
    if not opts.skip_generation:
        extra = ["--max-new-tokens", str(opts.max_new_tokens)] if opts.max_new_tokens else []
        lines += [
            f"generation (`evalsuite eval --engine {opts.engine}`, bf16"
            f"{', --max-new-tokens ' + str(opts.max_new_tokens) if extra else ''}):",
            "",
            "| task | problems | samples | metrics (%) | output tokens | generate s | tokens/s |"
            " ran to the token limit |",
            "|---|---:|---:|---|---:|---:|---:|---:|",
            generation(
                "humaneval_plus", opts.he_problems, opts.engine, "--n-samples", "10", *extra
            ),
            generation("math500", opts.math_problems, opts.engine, *extra),
        ]
    replace_section(SECTION, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
