"""The HumanEval+ task: the paper's prompt, and the scorer's verdicts inside a run."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA

from evalsuite.engines import Completion
from evalsuite.tasks.code_scorer import humaneval_plus_scorer
from evalsuite.tasks.data import load_task_data
from evalsuite.tasks.registry import TaskRegistry
from evalsuite.tasks.templates import PromptTemplate

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the benchmark data folder {SHARED_DATA} is not here"
)

# bigcode/humanevalpack's python instruction for HumanEval/0, from its dataset card
HUMANEVALPACK_0 = (
    "Write a Python function `has_close_elements(numbers: List[float], threshold: float) -> "
    "bool` to solve the following problem:\nCheck if in given list of numbers, are any two "
    "numbers closer to each other than\ngiven threshold.\n>>> has_close_elements([1.0, 2.0, "
    "3.0], 0.5)\nFalse\n>>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\nTrue"
)


@pytest.fixture(scope="module")
def task():
    spec = TaskRegistry().tasks["humaneval_plus"]
    return spec, load_task_data(spec, SHARED_DATA, limit=None)


def test_prompt_is_bigcodes_alpaca_chat_humanevalpack_prompt(task):
    spec, data = task
    assert data.docs[0]["instruction"] == HUMANEVALPACK_0
    template = PromptTemplate(spec)
    for doc, doc_id in zip(data.docs, data.ids, strict=True):
        expected = (
            "Below is an instruction that describes a task. Write a response that appropriately "
            "completes the request.\n\n### Instruction:\n"
            + doc["instruction"].strip()
            + "\n\n### Response:\n"
            + doc["prompt"]
        ).strip()
        assert template.render(doc, doc_id) == expected
        assert doc["instruction"].startswith("Write a Python function `")
    s = spec.sampling
    assert (s.n, s.temperature, s.top_p, s.seed, s.max_total_tokens) == (50, 0.2, 0.95, 0, 2048)
    assert "\nassert" in spec.stop and "<|eot_id|>" in spec.stop


def test_scorer_runs_the_programs(task):
    spec, data = task
    docs = data.docs[:4]
    completions = [
        [
            Completion("\n" + d["canonical_solution"] + "\n\nprint('trailing junk')", 9, "stop"),
            Completion("\n    return None\n", 3, "stop"),
        ]
        for d in docs
    ]
    scored = humaneval_plus_scorer(spec, docs, completions)
    statuses = [[s["details"]["status"] for s in per_doc] for per_doc in scored.samples]
    assert all(st[0] == "pass" and st[1] != "pass" for st in statuses), statuses
    assert scored.metrics["pass@1"].value == pytest.approx(0.5)
    assert scored.metrics["pass@1"].n == 4
    programs = scored.extra_files["evalplus"]
    assert len(programs) == 8 and "trailing junk" not in programs[0]["solution"]
    body = docs[0]["canonical_solution"]
    assert programs[0]["solution"].startswith(docs[0]["prompt"].rstrip() + "\n")
    assert body.strip() in programs[0]["solution"]
