"""Benchmark MATH paper-mode grading against the reference route the RaSA scripts take.

Inputs: 5000 responses built deterministically from the MATH test set, one per problem
(``evalsuite.testing.math_variants.mixed_pairs``): the gold answer, a rewritten gold
(``0.5`` for ``\\frac12``, reordered sums, ``10,000``, ``x = ...``), a wrong answer, or
garbage (no marker, or junk after it), each in the paper's "The answer is: ..." format.

Routes, each in a fresh process, timed after imports (so Python and library start-up are
not counted for either), best wall time of ``--repeats`` runs, run alternately:

* ``reference``: extract, Minerva's original ``normalize_final_answer`` on both sides (the
  RaSA scripts' function, restated in ``evalsuite.scoring.math.normalize``; lm-eval 0.4.13
  ships a rewritten one), then lm-eval's ``is_equiv`` one pair after another in a single
  process (5 s signal alarm), as the RaSA scripts do;
* ``evalsuite``: ``grade_math(mode="paper")``, the API behind ``evalsuite score math
  --mode paper``, with one worker per core; pool start-up is inside the timing;
* ``evalsuite-1``: the same with one worker, to separate the per-core gain (faster exact
  parser, caches, one comparison per distinct pair) from the gain of more cores.

Printed: times, the ratio (goal >= 5, aim 10; printed as PASS/MISS, not asserted), CPU
seconds (less sensitive than wall time to other jobs on a shared machine, whose load
average is recorded too), and the verdict agreement, which must be complete apart from
lm-eval's identical-string shortcut (counted). Then both modes' agreement with the labelled
pairs of data/math_equiv and every robust-mode disagreement. The figures go to the "MATH
grading" section of bench/RESULTS.md.

    python bench/math_grading.py [--repeats 3] [--n 5000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from results_md import replace_section

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
SECTION_TITLE = "## MATH grading (bench/math_grading.py)"
DATA = BENCH_DIR.parents[1] / "shared" / "data"
MATH_TEST = DATA / "math" / "test.jsonl"
EQUIV_PAIRS = DATA / "math_equiv" / "math_equiv_pairs.jsonl"
MARKER = "The answer is: "


def build_pairs(n: int) -> list[tuple[str, str, str]]:
    """(kind, response, gold) for the first n problems, deterministic."""
    from evalsuite.scoring.math.extract import last_boxed_content
    from evalsuite.testing.math_variants import mixed_pairs

    rows = [json.loads(line) for line in MATH_TEST.read_text().splitlines()]
    golds = [last_boxed_content(row["solution"]) or "" for row in rows]
    return list(mixed_pairs(golds, n))


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_reference(pairs: list[tuple[str, str, str]]) -> dict:
    """The RaSA scripts' route: lm-eval's sympy check, one pair at a time, one process."""
    from lm_eval.tasks.minerva_math.utils import is_equiv

    from evalsuite.scoring.math.normalize import normalize_final_answer

    start, cpu = time.perf_counter(), _cpu_seconds()
    verdicts, identical = [], []
    for _, text, gold in pairs:
        if MARKER not in text:
            verdicts.append(False)
            identical.append(False)
            continue
        answer = text.split(MARKER)[-1].split(".\n")[0].strip()
        answer = answer[:-1] if answer.endswith(".") else answer
        a, b = normalize_final_answer(answer), normalize_final_answer(gold)
        verdicts.append(bool(is_equiv(a, b)))
        identical.append(bool(a) and a == b)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu, "verdicts": verdicts,
            "identical": identical}  # fmt: skip


def run_evalsuite(pairs: list[tuple[str, str, str]], workers: int) -> dict:
    from evalsuite.scoring import grade_math

    items = [{"id": i, "prediction": text, "gold": gold} for i, (_, text, gold) in enumerate(pairs)]
    start, cpu = time.perf_counter(), _cpu_seconds()
    report = grade_math(items, mode="paper", workers=workers)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu,
            "verdicts": [bool(s.paper) for s in report.samples],
            "status": report.status_counts()}  # fmt: skip


def child_main(route: str, n: int, workers: int) -> None:
    pairs = build_pairs(n)
    if route == "reference":
        result = run_reference(pairs)
    else:
        import evalsuite.scoring.math.grade  # noqa: F401  (imports before the clock)

        result = run_evalsuite(pairs, workers)
    print(json.dumps(result))


def measure(route: str, n: int, workers: int) -> dict:
    command = [sys.executable, __file__, "--child", route, "--n", str(n), "--workers", str(workers)]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"{route} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def equiv_agreement(workers: int) -> list[str]:
    """Agreement of both modes with the labelled pairs, and every robust disagreement."""
    from evalsuite.scoring import grade_math

    rows = [json.loads(line) for line in EQUIV_PAIRS.read_text().splitlines()]
    items = [
        {"id": r["id"], "prediction": MARKER + r["given_answer"], "gold": r["ground_truth_answer"]}
        for r in rows
    ]
    report = grade_math(items, mode="both", workers=workers)
    paper = sum(s.paper == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    robust = sum(s.robust == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    lines = [
        f"Labelled pairs (data/math_equiv, {len(rows)} rows): agreement with the labels, "
        f"paper mode {paper}/{len(rows)}, robust mode {robust}/{len(rows)} "
        f"(goal >= 875; the official PRM800K grader: 875). Robust-mode disagreements:",
        "",
        "| id | source | given | ground truth | label | robust |",
        "|---:|---|---|---|---|---|",
    ]
    for s, r in zip(report.samples, rows, strict=True):
        if s.robust != r["is_correct"]:
            given = r["given_answer"].replace("|", "\\|")
            truth = r["ground_truth_answer"].replace("|", "\\|")
            lines.append(
                f"| {r['id']} | {r['source']} | `{given}` | `{truth}` | {r['is_correct']} | "
                f"{s.robust} |"
            )
    return [*lines, ""]


def machine_line() -> str:
    return (
        f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {platform.machine()}; "
        f"Python {platform.python_version()}, sympy {version('sympy')}, "
        f"antlr4-python3-runtime {version('antlr4-python3-runtime')}, "
        f"lm-eval {version('lm-eval')}, math-verify {version('math-verify')}"
    )


def write_results(text: str) -> None:
    """Replace this script's section of RESULTS.md, keeping the others."""
    replace_section(SECTION_TITLE, text)


ROUTES = {
    "reference": "reference (original normalize + lm-eval is_equiv, one process)",
    "evalsuite": "evalsuite score math --mode paper",
    "evalsuite-1": "evalsuite score math --mode paper, 1 worker",
}


def bench_main(args: argparse.Namespace) -> None:
    if not MATH_TEST.is_file():
        sys.exit(f"{MATH_TEST} not found: the benchmark needs the shared MATH test set")
    pairs = build_pairs(args.n)
    kinds = Counter(kind for kind, _, _ in pairs)
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {route: [] for route in ROUTES}
    for repeat in range(args.repeats):
        for route in ROUTES:
            workers = 1 if route == "evalsuite-1" else args.workers
            result = measure(route, args.n, workers)
            runs[route].append(result)
            print(f"run {repeat + 1}: {route:11s} {result['seconds']:7.2f} s wall, "
                  f"{result['cpu']:7.2f} s CPU")  # fmt: skip
    load_after = os.getloadavg()
    equiv = equiv_agreement(args.workers) if EQUIV_PAIRS.is_file() else []
    best = {route: min(rs, key=lambda r: r["seconds"]) for route, rs in runs.items()}
    ref, ours = best["reference"], best["evalsuite"]
    ratio = ref["seconds"] / ours["seconds"]
    pairs_of_runs = zip(runs["reference"], runs["evalsuite"], strict=True)
    paired = sorted(r["seconds"] / o["seconds"] for r, o in pairs_of_runs)
    cpu_ratio = ref["cpu"] / ours["cpu"]
    same = sum(a == b for a, b in zip(ref["verdicts"], ours["verdicts"], strict=True))
    differ = [i for i, (a, b) in enumerate(zip(ref["verdicts"], ours["verdicts"], strict=True))
              if a != b]  # fmt: skip
    by_shortcut = [i for i in differ if ref["identical"][i] and ref["verdicts"][i]]
    other = len(differ) - len(by_shortcut)
    verdict = "PASS" if ratio >= 5 else "MISS"
    rows = [
        f"| {label} | {best[route]['seconds']:.2f} | {best[route]['cpu']:.2f} | "
        + ", ".join(f"{r['seconds']:.2f}" for r in runs[route])
        + " |"
        for route, label in ROUTES.items()
    ]
    lines = [
        SECTION_TITLE,
        "",
        f"- date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (shared machine: other jobs ran alongside)",
        f"- inputs: {args.n} responses, one per MATH test problem: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        f"- method: each route a fresh process, timed after imports; {args.repeats} runs per "
        "route, alternating; best wall time; CPU = user+sys of that run's process and workers",
        f"- evalsuite: grade_math(mode='paper', workers={args.workers}), pool start included; "
        f"status {ours['status']}",
        "",
        "| route | best wall s | CPU s | every run (wall s) |",
        "|---|---:|---:|---|",
        *rows,
        "",
        f"- speed-up (best wall / best wall): {ratio:.1f}x, goal >= 5x: {verdict} (aim 10x); "
        f"paired runs {', '.join(f'{x:.1f}x' for x in paired)}; CPU ratio {cpu_ratio:.1f}x",
        f"- verdicts: {same}/{args.n} identical; {len(by_shortcut)} differ by lm-eval's "
        f"identical-string shortcut (tuples, intervals, matrices that sympy cannot parse: "
        f"True there, False in the paper's grader); {other} other differences",
        "",
        *equiv,
        "Command: `" + shlex.join(["python", "bench/math_grading.py", *sys.argv[1:]]) + "`",
        "",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        write_results(text)
        print(f"written to {RESULTS_FILE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="responses to grade")
    parser.add_argument("--repeats", type=int, default=3, help="runs per route (best counts)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--child", choices=tuple(ROUTES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.n, args.workers)
    else:
        bench_main(args)


if __name__ == "__main__":
    main()
