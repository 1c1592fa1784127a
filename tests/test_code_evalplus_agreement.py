"""EvalPlus mode gives the verdicts ``evalplus.evaluate`` (the PyPI package, 0.3.1) gives.

Both score the same samples file: 40 HumanEval+ tasks x 3 samples mixing correct, wrong,
slow and never-ending programs (EvalPlus insists on samples for every task of its dataset,
so both read a 40-task subset of the release file, EvalPlus through
HUMANEVAL_OVERRIDE_PATH). EvalPlus runs in a subprocess with a private cache; ``quirks``
makes ours reproduce its HumanEval/32 behaviour too.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_code_helpers import requires_data, write_samples

from evalsuite.scoring.code.data import load_dataset
from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.testing.code_variants import variant

HEAVY = {"HumanEval/15", "HumanEval/139", "HumanEval/130", "HumanEval/83", "HumanEval/94"}
HEAVY |= {"HumanEval/36", "HumanEval/59"}  # their canonical solutions take seconds
CYCLE = ["canonical", "off_by_one", "plus_only", "exception", "wrong_type", "slow", "canonical"]
RUN_EVALPLUS = """\
import os, sys
from evalplus.evaluate import evaluate
evaluate("humaneval", samples=sys.argv[1], parallel=2, min_time_limit=1.0)
os._exit(0)  # EvalPlus leaves a non-daemon thread sleeping 20 s
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("evalplus") is None, reason="evalplus not installed")
def test_same_verdicts_as_evalplus(tmp_path: Path) -> None:
    source = requires_data()
    with gzip.open(source, "rt") as f:
        rows = [json.loads(line) for line in f]
    chosen = [r for r in rows if r["task_id"] not in HEAVY][:40]  # HumanEval/32 among them
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    data = load_dataset(subset)
    samples, kinds = [], []
    for n, task_id in enumerate(data.task_ids):
        picked = [CYCLE[(n + j) % len(CYCLE)] for j in range(3)]
        if n % 13 == 5:
            picked[2] = "infinite"
        for kind in picked:
            program = variant(data.problems[task_id], kind, seconds=0.2)
            samples.append({"task_id": task_id, "solution": program})
            kinds.append(kind)
    path = write_samples(tmp_path / "samples.jsonl", samples)

    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(subset)}
    env["XDG_CACHE_HOME"] = str(tmp_path / "evalplus-cache")
    done = subprocess.run(
        [sys.executable, "-c", RUN_EVALPLUS, str(path)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads((tmp_path / "samples_eval_results.json").read_text())["eval"]

    report = score_humaneval_plus(
        path, dataset=subset, mode="evalplus", workers=2, min_time_limit=1.0, quirks=True
    )
    position: dict[str, int] = {}
    differences = []
    for sample, kind in zip(report.samples, kinds, strict=True):
        index = position.get(sample.task_id, 0)
        position[sample.task_id] = index + 1
        expected = theirs[sample.task_id][index]
        pair = (expected["base_status"], expected["plus_status"])
        if (sample.reference["base_status"], sample.reference["plus_status"]) != pair:
            differences.append((sample.task_id, index, kind, sample.reference, pair))
            continue
        # and the same first failing input, where EvalPlus names one
        problem = data.problems[sample.task_id]
        for split, inputs in (("base", problem.base_input), ("plus", problem.plus_input)):
            failed = expected[f"{split}_fail_tests"]
            if (
                expected[f"{split}_status"] == "fail"
                and failed
                and sample.task_id != "HumanEval/32"
            ):
                mine = sample.failed_index if sample.failed_split == split else None
                if split == "plus" and sample.failed_split == "base":
                    continue  # our record names the base failure; EvalPlus ran plus anyway
                if mine is None or inputs[mine] != failed[0]:
                    differences.append((sample.task_id, index, kind, split, mine, failed[0]))
    assert len(report.samples) == 120
    assert differences == []
    statuses = {s.reference["plus_status"] for s in report.samples}
    assert {"pass", "fail"} <= statuses  # the mix really has both
