"""tiny_gen's exact_match on hand-made completions where both verdicts occur (the tiny
random model never matches, so runs of it only ever compare 0 with 0)."""

from __future__ import annotations

import json
import math

import pytest

from evalsuite.engines.base import Completion
from evalsuite.tasks.scorers import get_scorer
from evalsuite.tasks.spec import parse_task
from evalsuite.testing.checkpoints import EXAMPLE_TASKS


def test_exact_match_counts_right_and_wrong_completions():
    spec = parse_task(EXAMPLE_TASKS / "tiny_gen.yaml")
    docs = [json.loads(line) for line in (EXAMPLE_TASKS / "tiny_gen.jsonl").read_text().split("\n")
            if line.strip()]  # fmt: skip
    # per document: the answer with stray whitespace (right), a near miss and empty (wrong)
    completions = [
        [Completion(f"  {d['answer']}\n", 3, "stop"), Completion(d["answer"] + ";", 3, "stop"),
         Completion("", 0, "length")]
        for d in docs
    ]  # fmt: skip
    scored = get_scorer(spec)(spec, docs, completions)
    verdicts = [s["verdict"] for per_doc in scored.samples for s in per_doc]
    assert verdicts == [True, False, False] * len(docs)
    metric = scored.metrics["exact_match"]
    n = 3 * len(docs)
    assert metric.n == n and metric.value == pytest.approx(1 / 3)
    # the standard error of a mean of 0/1 values, sample standard deviation (as lm-eval)
    assert metric.stderr == pytest.approx(math.sqrt((1 / 3) * (2 / 3) * n / (n - 1) / n))
