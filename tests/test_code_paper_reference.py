"""Paper mode against the literal bigcode program.

For each sample, the program bigcode runs is built from its parts (generation + "\\n" +
"\\n" + the HF ``test`` with its answers + "\\n" + ``check(entry_point)``) and executed as a
whole, inside the sandbox, by a small wrapper that reports whether ``exec`` raised (our own
variants, so their output can be trusted here). Paper mode, which never shows the answers to
the program, must reach the same verdict on every sample; with ``quirks`` for HumanEval/32,
where the HF test fails every numeric answer and paper mode by default checks the root.
"""

from __future__ import annotations

import pytest
from test_code_helpers import requires_data, write_samples

from evalsuite.scoring.code import paper as code_paper
from evalsuite.scoring.code.data import load_dataset
from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.scoring.code.truth import GroundTruth
from evalsuite.scoring.sandbox.box import Job, Sandbox
from evalsuite.testing.code_variants import variant
from evalsuite.testing.collector import Collector

TASKS = [0, 2, 4, 12, 16, 23, 32, 45, 53, 100, 107, 150]  # floats, find_zero, a crosscheck task
KINDS = ("canonical", "off_by_one", "wrong_type", "exception", "plus_only")
WRAPPER = """\
import sys
sys.set_int_max_str_digits(0)
try:
    exec(compile(PROGRAM, "<program>", "exec"), {})
    print("passed")
except BaseException as e:
    print("failed", type(e).__name__)
"""


@pytest.mark.slow
def test_same_verdicts_as_the_literal_program(tmp_path) -> None:
    path = requires_data()
    data = load_dataset(path)
    task_ids = [f"HumanEval/{n}" for n in TASKS]
    truth = GroundTruth(data, task_ids=task_ids, workers=2)
    rows, jobs = [], []
    for task_id in task_ids:
        problem, facts = data.problems[task_id], truth.tasks[task_id]
        outputs = truth.outputs(task_id)
        both = outputs["base"] + outputs["plus"]
        inputs = code_paper.paper_inputs(problem, facts)
        results = [both[i] for i in facts.paper_index]
        test = code_paper.hf_test(problem, inputs, results)
        for kind in KINDS:
            program = variant(problem, kind)
            rows.append({"task_id": task_id, "solution": program})
            literal = program + "\n" + code_paper.reference(test, problem.entry_point)
            jobs.append(Job("script", f"PROGRAM = {literal!r}\n" + WRAPPER, 120))
    literal_verdicts: dict[int, str] = {}
    with Sandbox({}, workers=2) as box:
        box.run(
            jobs,
            lambda i, job: Collector(),
            lambda i, out: literal_verdicts.update({i: out[0].output}),
        )
    report = score_humaneval_plus(
        write_samples(tmp_path / "s.jsonl", rows),
        dataset=path,
        mode="paper",
        workers=2,
        quirks=True,
    )
    mismatches = []
    for i, sample in enumerate(report.samples):
        literal_passed = literal_verdicts[i].strip() == "passed"
        if literal_passed != (sample.status == "pass"):
            mismatches.append((sample.task_id, KINDS[i % len(KINDS)], literal_verdicts[i], sample))
    assert mismatches == []
    # the HF quirks show up in both: a float answer wrapped in a list passes its np.allclose,
    # and nothing passes HumanEval/32
    by_kind = {(s.task_id, KINDS[i % len(KINDS)]): s.status for i, s in enumerate(report.samples)}
    assert by_kind[("HumanEval/2", "wrong_type")] == "pass"
    assert by_kind[("HumanEval/32", "canonical")] == "fail"
