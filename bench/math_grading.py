"""Benchmark MATH paper-mode grading against the reference route the RaSA scripts take.

Inputs: 5000 responses built deterministically from the MATH test set, one per problem
(``evalsuite.testing.math_variants.mixed_pairs``): the gold answer, a rewritten gold
(``0.5`` for ``\\frac12``, reordered sums, ``10,000``, ``x = ...``), a wrong answer, or
garbage (no marker, or junk after it), each in the paper's "The answer is: ..." format.

Routes, each in a fresh process, timed after imports (so Python and library start-up are
not counted for either), run in alternating rounds (reference, evalsuite, evalsuite-1, then
again), ``--repeats`` rounds; the load average is recorded before every run:

* ``reference``: the RaSA scripts' grader (utils/minerva_utils.py of zwhe99/RaSA), restated
  here: extract, Minerva's original ``normalize_final_answer`` on both sides (restated in
  ``evalsuite.scoring.math.normalize``), then sympy's own ``parse_latex`` on each side and
  ``simplify(a - b) == 0`` under a 5 s alarm, any exception meaning "not equal", one pair
  after another in one process, as the scripts run it;
* ``evalsuite``: ``grade_math(mode="paper")``, the API behind ``evalsuite score math
  --mode paper``, with one worker per core; pool start-up is inside the timing;
* ``evalsuite-1``: the same with one worker, to separate the per-core gain (faster exact
  parser, caches, the nonzero probe before ``simplify``) from the gain of more cores.

Printed: wall times and CPU seconds (user+sys of the run's process and its workers: on a
shared machine other jobs move wall time much more than CPU time), the ratios (goal >= 5,
aim 10; printed as PASS/MISS, not asserted), and the verdicts, which must be identical on
every response. Then both modes' agreement with the labelled pairs of data/math_equiv, paper
mode's agreement with the reference there, and every robust-mode disagreement. The figures
go to the "MATH grading" section of bench/RESULTS.md.

    python bench/math_grading.py [--repeats 3] [--n 5000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import signal
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
REFERENCE_TIMEOUT_S = 5


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


class _Alarm(Exception):
    """Raised by SIGALRM: one comparison passed the reference's 5 s limit."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Alarm


def reference_equiv(a: str, b: str) -> bool:
    """The RaSA scripts' equivalence (utils/minerva_utils.py, ``is_equiv``), restated: sympy's
    own ``parse_latex`` on both sides, ``simplify(a - b) == 0``, 5 s alarm; any exception
    (a parse error, a failed subtraction or simplify, the alarm) means "not equal"."""
    import sympy
    from sympy.parsing.latex import parse_latex

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(REFERENCE_TIMEOUT_S)
    try:
        return bool(sympy.simplify(parse_latex(a) - parse_latex(b)) == 0)
    except ImportError:
        raise
    except Exception:
        return False
    finally:
        signal.alarm(0)


def run_reference(pairs: list[tuple[str, str, str]]) -> dict:
    """The RaSA scripts' route: extract, normalise, ``reference_equiv``, one pair at a time."""
    from evalsuite.scoring.math.normalize import normalize_final_answer

    start, cpu = time.perf_counter(), _cpu_seconds()
    verdicts = []
    for _, text, gold in pairs:
        if MARKER not in text:  # the scripts' "[INVALID]", which never parses
            verdicts.append(False)
            continue
        answer = text.split(MARKER)[-1].split(".\n")[0].strip()
        answer = answer[:-1] if answer.endswith(".") else answer
        a, b = normalize_final_answer(answer), normalize_final_answer(gold)
        verdicts.append(reference_equiv(a, b))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu": _cpu_seconds() - cpu, "verdicts": verdicts}


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
    """Both modes against the labels, paper mode against the reference, robust disagreements."""
    from evalsuite.scoring import grade_math
    from evalsuite.scoring.math.normalize import normalize_final_answer

    rows = [json.loads(line) for line in EQUIV_PAIRS.read_text().splitlines()]
    items = [
        {"id": r["id"], "prediction": MARKER + r["given_answer"], "gold": r["ground_truth_answer"]}
        for r in rows
    ]
    report = grade_math(items, mode="both", workers=workers)
    paper = sum(s.paper == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    robust = sum(s.robust == r["is_correct"] for s, r in zip(report.samples, rows, strict=True))
    same = sum(
        s.paper
        == reference_equiv(normalize_final_answer(s.extracted or ""), normalize_final_answer(g))
        for s, g in zip(report.samples, (r["ground_truth_answer"] for r in rows), strict=True)
    )
    lines = [
        f"Labelled pairs (data/math_equiv, {len(rows)} rows): paper mode's verdict equals the "
        f"reference's on {same}/{len(rows)}; agreement with the labels, "
        f"paper mode {paper}/{len(rows)}, robust mode {robust}/{len(rows)} "
        f"(goal >= 875; the official PRM800K grader: 875). Robust-mode disagreements:",
        "",
        "| id | source | given | ground truth | label | robust |",
        "|---|---|---|---|---|---|",
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
        f"math-verify {version('math-verify')}"
    )


def write_results(text: str) -> None:
    """Replace this script's section of RESULTS.md, keeping the others."""
    replace_section(SECTION_TITLE, text)


ROUTES = {
    "reference": "reference (RaSA scripts: parse_latex + simplify, one process)",
    "evalsuite": "evalsuite score math --mode paper",
    "evalsuite-1": "evalsuite score math --mode paper, 1 worker",
}


def _ratios(num: list[dict], den: list[dict], key: str) -> str:
    return ", ".join(f"{n[key] / d[key]:.1f}x" for n, d in zip(num, den, strict=True))


def bench_main(args: argparse.Namespace) -> None:
    if not MATH_TEST.is_file():
        sys.exit(f"{MATH_TEST} not found: the benchmark needs the shared MATH test set")
    pairs = build_pairs(args.n)
    kinds = Counter(kind for kind, _, _ in pairs)
    runs: dict[str, list[dict]] = {route: [] for route in ROUTES}
    for repeat in range(args.repeats):
        for route in ROUTES:
            workers = 1 if route == "evalsuite-1" else args.workers
            load = os.getloadavg()
            result = {**measure(route, args.n, workers), "load": load[0]}
            runs[route].append(result)
            print(f"round {repeat + 1}: {route:11s} {result['seconds']:7.2f} s wall, "
                  f"{result['cpu']:7.2f} s CPU, load {load[0]:.2f}", flush=True)  # fmt: skip
    equiv = equiv_agreement(args.workers) if EQUIV_PAIRS.is_file() else []
    best = {route: min(rs, key=lambda r: r["seconds"]) for route, rs in runs.items()}
    least_cpu = {route: min(r["cpu"] for r in rs) for route, rs in runs.items()}
    ref, ours = best["reference"], best["evalsuite"]
    ratio = ref["seconds"] / ours["seconds"]
    cpu_ratio = least_cpu["reference"] / least_cpu["evalsuite"]
    differ = [
        i
        for rs in runs.values()
        for r in rs
        for i, (a, b) in enumerate(zip(ref["verdicts"], r["verdicts"], strict=True))
        if a != b
    ]

    def verdict(x: float) -> str:
        return "PASS" if x >= 5 else "MISS"

    rows = [
        f"| {label} | {best[route]['seconds']:.2f} | {least_cpu[route]:.2f} | "
        + ", ".join(f"{r['seconds']:.2f}" for r in runs[route])
        + " | "
        + ", ".join(f"{r['cpu']:.2f}" for r in runs[route])
        + " | "
        + ", ".join(f"{r['load']:.1f}" for r in runs[route])
        + " |"
        for route, label in ROUTES.items()
    ]
    lines = [
        SECTION_TITLE,
        "",
        f"- date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine_line()}; load before each run in the table",
        f"- inputs: {args.n} responses, one per MATH test problem: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        f"- method: each route a fresh process, timed after imports; {args.repeats} alternating "
        "rounds; CPU = user+sys of that run's process and its workers; load = 1-minute load "
        "average just before the run",
        f"- evalsuite: grade_math(mode='paper', workers={args.workers}), pool start included; "
        f"status {ours['status']}",
        "",
        "| route | best wall s | least CPU s | each round, wall s | each round, CPU s | "
        "load before each |",
        "|---|---:|---:|---|---|---|",
        *rows,
        "",
        f"- wall: best / best {ratio:.1f}x, goal >= 5x: **{verdict(ratio)}** (aim 10x); "
        f"per round {_ratios(runs['reference'], runs['evalsuite'], 'seconds')}",
        f"- CPU: least / least {cpu_ratio:.1f}x ({verdict(cpu_ratio)}); per round "
        f"{_ratios(runs['reference'], runs['evalsuite'], 'cpu')}; one worker: "
        f"{least_cpu['reference'] / least_cpu['evalsuite-1']:.1f}x",
        f"- verdicts: every run of every route equals the reference on "
        f"{args.n - len(set(differ))}/{args.n} responses"
        + (f" (differ: {sorted(set(differ))[:20]})" if differ else ""),
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
