"""The MATH task: the reference prompt, byte for byte, and the scorer's verdicts in a run."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from evalsuite.engines import Completion
from evalsuite.tasks.data import load_task_data
from evalsuite.tasks.math_scorer import math_scorer
from evalsuite.tasks.registry import TaskRegistry
from evalsuite.tasks.templates import PromptTemplate

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the benchmark data folder {SHARED_DATA} is not here"
)


def _reference_prompt(problem: str) -> str:
    """The RaSA repo's alpaca-chat template with add_generation_prompt (BOS left to the
    tokenizer, which adds it for Llama/Mistral exactly where the template writes it)."""
    return (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n"
        + problem.strip()
        + "\n\n### Response:\nLet's think step by step."
    )


@pytest.mark.parametrize("task", ["math", "math500"])
def test_prompt_is_the_papers(task):
    spec = TaskRegistry().tasks[task]
    data = load_task_data(spec, SHARED_DATA, limit=50)
    template = PromptTemplate(spec)
    for doc, doc_id in zip(data.docs, data.ids, strict=True):
        assert template.render(doc, doc_id) == _reference_prompt(doc["problem"])
    assert spec.sampling.temperature == 0 and spec.sampling.max_tokens == 2048


def test_scorer_grades_a_run_and_breaks_it_down():
    spec = TaskRegistry().tasks["math500"]
    data = load_task_data(spec, SHARED_DATA, limit=6)
    answers = [
        json.loads(line)["answer"]
        for line in (SHARED_DATA / "math500" / "test.jsonl").read_text().splitlines()[:6]
    ]
    texts = [
        f"Some reasoning.\nThe answer is: {answers[0]}",  # right
        f"The answer is: {answers[1]}.\nMore text",  # right, cut at '.\n'
        "The answer is: 123456789",  # wrong
        f"\\boxed{{{answers[3]}}}",  # no marker: invalid in paper mode, right in robust mode
        "",  # nothing
        f"The answer is: {answers[5]}",  # right
    ]
    completions = [[Completion(t, 5, "stop")] for t in texts]
    scored = math_scorer(spec, data.docs, completions)
    paper = [s[0]["details"]["paper"] for s in scored.samples]
    robust = [s[0]["details"]["robust"] for s in scored.samples]
    assert paper[2] is False and paper[3] is False and paper[4] is False
    assert robust[0] and robust[1] and robust[5], "the gold answer itself must pass robust mode"
    assert robust[3] is True and scored.samples[3][0]["details"]["status"] == "invalid"
    assert scored.metrics["acc"].value == pytest.approx(sum(paper) / 6)
    assert scored.metrics["acc_robust"].value == pytest.approx(sum(robust) / 6)
    subjects = {d["subject"] for d in data.docs}
    assert {f"acc/subject={s}" for s in subjects} <= set(scored.metrics)
    assert sum(scored.metrics[f"acc/subject={s}"].n for s in subjects) == 6
