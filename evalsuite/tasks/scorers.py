"""Scorers turn a task's completions into per-sample verdicts and metrics.

A registry, so HumanEval+, MATH and the rest plug in by name from the task YAML. A scorer
sees the whole task at once (docs and all completions) so it can batch work across processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalsuite.engines import Completion
from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.spec import TaskSpec


@dataclass
class Metric:
    value: float
    stderr: float | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "stderr": self.stderr, "n": self.n}


@dataclass
class Scored:
    metrics: dict[str, Metric]
    # one per (doc, sample): sample_index, verdict or score, details; the runner adds the rest
    samples: list[list[dict[str, Any]]]
    # more JSONL files for the results directory: samples_<task>.<name>.jsonl
    extra_files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # scorers that run generated code: the sandbox it ran in (results_schema.SandboxRecord)
    sandbox: dict[str, Any] | None = None
    # samples the engine ended without an answer (engines.base.FAILED_ENDINGS): failures
    engine_failures: int = 0
    # loglikelihood requests longer than the engine's limit, scored without their start
    cut_requests: int = 0


Scorer = Callable[[TaskSpec, Sequence[dict], Sequence[list[Completion]]], Scored]
SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str) -> Callable[[Scorer], Scorer]:
    def add(fn: Scorer) -> Scorer:
        SCORERS[name] = fn
        return fn

    return add


# Modules whose import registers more scorers; imported on first use (they pull in sympy
# and friends, which a generation-only run should not pay for).
_BUILTIN_SCORER_MODULES = ("evalsuite.tasks.math_scorer", "evalsuite.tasks.code_scorer")


def get_scorer(spec: TaskSpec) -> Scorer:
    import importlib

    for module in _BUILTIN_SCORER_MODULES:
        importlib.import_module(module)
    if spec.scorer not in SCORERS:
        known = ", ".join(sorted(SCORERS))
        raise TaskError(f"{spec.source}: unknown scorer {spec.scorer!r}; known scorers: {known}")
    return SCORERS[spec.scorer]


def mean_metric(values: Sequence[float]) -> Metric:
    """Mean with the standard error of the mean (sample standard deviation, as lm-eval)."""
    n = len(values)
    if n == 0:
        return Metric(float("nan"), None, 0)
    mean = sum(values) / n
    if n < 2:
        return Metric(mean, None, n)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Metric(mean, math.sqrt(var / n), n)


@register_scorer("exact_match")
def exact_match(spec: TaskSpec, docs, completions) -> Scored:
    """Completion (stripped) equals the document's target field (stripped): a test scorer."""
    field = spec.scorer_args.get("target_field", "target")
    samples, values = [], []
    for doc, outs in zip(docs, completions, strict=True):
        target = str(doc[field]).strip()
        per_doc = []
        for k, c in enumerate(outs):
            ok = c.text.strip() == target
            values.append(float(ok))
            per_doc.append({"sample_index": k, "verdict": ok, "details": {"target": target}})
        samples.append(per_doc)
    return Scored({"exact_match": mean_metric(values)}, samples)
