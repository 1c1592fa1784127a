"""The ``humaneval_plus`` scorer: the paper's post-processing, then evalsuite.scoring's
sandboxed execution in paper (bigcode) or EvalPlus mode; pass@1 / pass@10 with the unbiased
estimator, base and plus, and per sample the status and first failing input.

The programs are also returned as an EvalPlus-compatible samples file (``task_id``,
``solution``) that the runner writes beside the results, so anyone can re-score them.

The programs run in the bubblewrap jail, or in basic mode only where the operator allowed
it (:mod:`evalsuite.scoring.code.isolation`); the sandbox they ran in is returned as the
task's ``sandbox`` record, so every score says how its programs were confined.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from evalsuite.tasks.scorers import Metric, Scored, register_scorer
from evalsuite.tasks.spec import TaskSpec

_DATASET_FIELDS = (
    "task_id",
    "prompt",
    "entry_point",
    "canonical_solution",
    "base_input",
    "plus_input",
    "atol",
    "contract",
    "test",
)


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


@register_scorer("humaneval_plus")
def humaneval_plus_scorer(spec: TaskSpec, docs, completions) -> Scored:
    from evalsuite.scoring.code.isolation import (
        basic_allowed,
        check_jail,
        isolation_for,
        sandbox_record,
    )
    from evalsuite.scoring.code.postprocess import postprocess_completion
    from evalsuite.scoring.code.score import score_humaneval_plus

    args = spec.scorer_args
    allow_basic = basic_allowed()
    if not allow_basic:  # the refusal, with the reason, before any program runs
        check_jail(allow_basic, [spec.name])
    programs = [
        {"task_id": doc["task_id"], "solution": postprocess_completion(doc["prompt"], c.text)}
        for doc, outs in zip(docs, completions, strict=True)
        for c in outs
    ]
    with tempfile.TemporaryDirectory(prefix="evalsuite-humaneval-") as tmp:
        dataset, samples = Path(tmp) / "dataset.jsonl", Path(tmp) / "samples.jsonl"
        _write_jsonl(dataset, ({k: d[k] for k in _DATASET_FIELDS if k in d} for d in docs))
        _write_jsonl(samples, programs)
        report = score_humaneval_plus(
            samples,
            dataset=dataset,
            mode=args.get("mode", "paper"),
            workers=args.get("workers"),
            isolation=isolation_for(allow_basic),  # the jail, or no score unless allowed
        )
    n_problems = len(docs)
    metrics: dict[str, Metric] = {}
    for prefix, key in (("", "status"), ("base/", "base_status"), ("plus/", "plus_status")):
        for name, value in report.pass_at_k(key).items():
            if value is not None:
                metrics[prefix + name] = Metric(value, None, n_problems)
    by_task: dict[str, list] = {}
    for s in report.samples:
        by_task.setdefault(s.task_id, []).append(s)
    per_doc = []
    for doc in docs:
        results = sorted(by_task.get(doc["task_id"], []), key=lambda s: s.index)
        per_doc.append(
            [
                {
                    "sample_index": s.index,
                    "verdict": s.status == "pass",
                    "details": {
                        "status": s.status,
                        "base_status": s.base_status,
                        "plus_status": s.plus_status,
                        "failed_split": s.failed_split,
                        "failed_input": s.failed_input,
                        "seconds": round(s.seconds, 3),
                    },
                }
                for s in results
            ]
        )
    return Scored(
        metrics,
        per_doc,
        extra_files={"evalplus": programs},
        sandbox=sandbox_record(report.isolation, allow_basic),
    )
