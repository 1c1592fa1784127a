"""What the sandbox's isolation costs per program: the jail against the previous isolation.

Three routes run the same programs through ``Sandbox`` (2 workers), each in a fresh
process, in alternating rounds:

* ``jail``: this checkout, ``isolation="auto"`` (bubblewrap jail with a read-only root;
  per program PID/IPC/mount/network/UTS namespaces, a cgroup, a uid per slot and the
  seccomp allowlist);
* ``basic``: this checkout, ``isolation="basic"`` (audit hook and the seccomp filter; the
  cgroup still applies);
* ``anchor``: the sandbox before the second security round (the same jail without the
  network/UTS namespace per program and without seccomp), from a git worktree of
  ``--anchor``. The first round's figures (the jail against the sandbox before it,
  ``36cf66d``: 1.01x) are in git history.

Programs: ``--programs`` small HumanEval-like scripts (a function defined and called a few
times; every tenth imports numpy), as scoring runs them. Start-up (the zygote) is timed
apart from the programs. Prints per-program milliseconds, the ratio to the anchor and the
machine's load, and writes them to this script's section of bench/RESULTS.md. It never
asserts.

    python bench/sandbox_cost.py [--programs 600] [--rounds 3] [--anchor 36cf66d]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results_md import replace_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Sandbox isolation cost per program (bench/sandbox_cost.py)"
ANCHOR = "ac183b3"  # the last commit before the seccomp filter and per-program netns (issue 26)

RUN = """\
import json, sys, time
sys.path.insert(0, sys.argv[1])
from evalsuite.testing.collector import Collector
from evalsuite.scoring.sandbox.box import Job, Sandbox
isolation, count = sys.argv[2], int(sys.argv[3])
body = "def f(a, b):\\n    return sorted([a, b]) + [a * b]\\nfor i in range(50):\\n    f(i, 2)\\n"
programs = [("import numpy\\n" if n % 10 == 0 else "") + body for n in range(count)]
started = time.perf_counter()
with Sandbox({}, workers=2, isolation=isolation) as box:
    ready = time.perf_counter()
    bad = []
    box.run([Job("script", p, 10) for p in programs], lambda i, j: Collector(),
            lambda i, out: bad.append(i) if out[0].exit_code != 0 else None)
    done = time.perf_counter()
    info = box.info
print("JSON " + json.dumps({"start": ready - started, "run": done - ready, "failed": len(bad),
                            "namespaces": info["namespaces"], "memory": info.get("memory", "")}))
"""


def route(root: Path, isolation: str, count: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(root), isolation, str(count)],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    return json.loads(next(line[5:] for line in out.splitlines() if line.startswith("JSON ")))


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--anchor", default=ANCHOR, help="git revision of the old sandbox")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-anchor-") as tmp:
        anchor = Path(tmp) / "anchor"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(anchor), args.anchor],
            check=True,
            capture_output=True,
        )
        try:
            routes = {"jail": (ROOT, "auto"), "basic": (ROOT, "basic"), "anchor": (anchor, "auto")}
            times: dict[str, list[dict]] = {name: [] for name in routes}
            loads = [load()]
            for _ in range(args.rounds):
                for name, (root, isolation) in routes.items():
                    times[name].append(route(root, isolation, args.programs))
                loads.append(load())
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(anchor)])
    per = {n: [1000 * r["run"] / args.programs for r in rs] for n, rs in times.items()}
    best = {n: min(v) for n, v in per.items()}
    lines = [
        SECTION,
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average before and after each round: "
        + " | ".join(loads),
        f"- {args.programs} programs per run (every tenth imports numpy), 2 workers, "
        f"{args.rounds} alternating rounds; anchor = `{args.anchor}` (the jail without a "
        "network namespace per program and without the seccomp filter)",
        "",
        "| route | ms per program (best) | every round | zygote start s (median) | failed |",
        "|---|---:|---|---:|---:|",
    ]
    for name in routes:
        rounds = ", ".join(f"{x:.2f}" for x in per[name])
        start = statistics.median(r["start"] for r in times[name])
        failed = sum(r["failed"] for r in times[name])
        lines.append(f"| {name} | {best[name]:.2f} | {rounds} | {start:.2f} | {failed} |")
    lines += [
        "",
        f"- jail / anchor: {best['jail'] / best['anchor']:.2f}x per program; "
        f"jail / basic: {best['jail'] / best['basic']:.2f}x",
        f"- jail reported: memory {times['jail'][0]['memory']!r}",
        "- goal (issue 26): jail / anchor at most 1.5x",
        "",
        f"Command: `python bench/sandbox_cost.py --programs {args.programs} "
        f"--rounds {args.rounds}`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(SECTION, text)


if __name__ == "__main__":
    main()
