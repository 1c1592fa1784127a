"""HumanEval+ verdicts on the real model's own programs: evalsuite's EvalPlus mode (with
``quirks`` for HumanEval/32) gives ``evalplus.evaluate``'s statuses, and paper mode the
literal bigcode program's verdict, on every sample.

The samples (tests/data/real_model/humaneval_plus_smollm2.jsonl) are SmolLM2-135M-Instruct's
completions for HumanEval/0-19, 10 each at the task's T=0.2 (how they were made: the README
beside them). A 135M model passes almost nothing, so each problem also gets its canonical
solution and a deliberately wrong one (off by one), and both verdicts occur.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from test_code_evalplus_agreement import RUN_EVALPLUS
from test_code_helpers import requires_data, write_samples

from evalsuite.scoring.code import paper as code_paper
from evalsuite.scoring.code.data import load_dataset
from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.scoring.code.truth import GroundTruth
from evalsuite.scoring.sandbox.box import Job, Sandbox
from evalsuite.testing.code_variants import variant
from evalsuite.testing.collector import Collector

SAMPLES = Path(__file__).parent / "data" / "real_model" / "humaneval_plus_smollm2.jsonl"


@pytest.fixture(scope="module")
def real_samples(tmp_path_factory):
    """(dataset subset, samples file, kinds): the model's 200 programs plus a canonical and
    an off-by-one program per problem."""
    with gzip.open(requires_data(), "rt") as f:
        rows = [json.loads(line) for line in f]
    made = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    task_ids = sorted({m["task_id"] for m in made}, key=lambda t: int(t.split("/")[1]))
    assert len(task_ids) == 20 and len(made) == 200
    tmp = tmp_path_factory.mktemp("real-code")
    subset = tmp / "subset.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows if r["task_id"] in task_ids))
    data = load_dataset(subset)
    samples, kinds = [], []
    for task_id in task_ids:
        problem = data.problems[task_id]
        for m in (m for m in made if m["task_id"] == task_id):
            samples.append({"task_id": task_id, "solution": problem.prompt + m["completion"]})
            kinds.append("model")
        for kind in ("canonical", "off_by_one"):
            samples.append({"task_id": task_id, "solution": variant(problem, kind)})
            kinds.append(kind)
    return subset, data, write_samples(tmp / "samples.jsonl", samples), kinds


@pytest.mark.slow
def test_evalplus_mode_gives_evalplus_statuses(real_samples, tmp_path):
    subset, _, path, kinds = real_samples
    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(subset)}
    env["XDG_CACHE_HOME"] = str(tmp_path / "evalplus-cache")
    done = subprocess.run(
        [sys.executable, "-c", RUN_EVALPLUS, str(path)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(path.with_name("samples_eval_results.json").read_text())["eval"]
    report = score_humaneval_plus(
        path, dataset=subset, mode="evalplus", workers=2, min_time_limit=1.0, quirks=True
    )
    position: dict[str, int] = {}
    differences, statuses = [], set()
    for sample, kind in zip(report.samples, kinds, strict=True):
        index = position.get(sample.task_id, 0)
        position[sample.task_id] = index + 1
        expected = theirs[sample.task_id][index]
        pair = (expected["base_status"], expected["plus_status"])
        ours = (sample.reference["base_status"], sample.reference["plus_status"])
        statuses.add((kind, ours[1]))
        if ours != pair:
            differences.append((sample.task_id, index, kind, ours, pair))
    assert differences == []
    assert {("canonical", "pass"), ("off_by_one", "fail"), ("model", "fail")} <= statuses


WRAPPER = """\
import sys
sys.set_int_max_str_digits(0)
try:
    exec(compile(PROGRAM, "<program>", "exec"), {})
    print(NONCE, "passed")
except BaseException as e:
    print(NONCE, "failed", type(e).__name__)
"""


@pytest.mark.slow
def test_paper_mode_agrees_with_the_literal_bigcode_program(real_samples):
    """The model's programs may print anything, so the wrapper's report carries a nonce the
    program never sees."""
    subset, data, path, kinds = real_samples
    truth = GroundTruth(data, task_ids=data.task_ids, workers=2)
    nonce = secrets.token_hex(16)
    jobs = []
    for row in (json.loads(line) for line in path.read_text().splitlines()):
        problem, facts = data.problems[row["task_id"]], truth.tasks[row["task_id"]]
        outputs = truth.outputs(row["task_id"])
        both = outputs["base"] + outputs["plus"]
        inputs = code_paper.paper_inputs(problem, facts)
        test = code_paper.hf_test(problem, inputs, [both[i] for i in facts.paper_index])
        literal = row["solution"] + "\n" + code_paper.reference(test, problem.entry_point)
        script = f"PROGRAM = {literal!r}\nNONCE = {nonce!r}\n" + WRAPPER
        jobs.append(Job("script", script, 120))
    literal: dict[int, bool] = {}
    with Sandbox({}, workers=2) as box:
        box.run(
            jobs,
            lambda i, job: Collector(),
            lambda i, out: literal.update({i: f"{nonce} passed" in (out[0].output or "")}),
        )
    report = score_humaneval_plus(path, dataset=subset, mode="paper", workers=2, quirks=True)
    mismatches = [
        (s.task_id, kinds[i], s.status)
        for i, s in enumerate(report.samples)
        if literal[i] != (s.status == "pass")
    ]
    assert mismatches == []
    assert {literal[i] for i, kind in enumerate(kinds) if kind != "model"} == {True, False}
