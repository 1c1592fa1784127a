"""The ``math`` scorer: MATH responses graded in paper mode (``acc``) and robust mode
(``acc_robust``, beside it, never instead), with per-subject and per-level breakdowns.

Grading runs in evalsuite.scoring's killing pool, so a pathological answer costs at most the
per-item limit and never stops the run.
"""

from __future__ import annotations

import os
from collections import defaultdict

from evalsuite.tasks.scorers import Metric, Scored, mean_metric, register_scorer
from evalsuite.tasks.spec import TaskSpec


def _breakdowns(name: str, verdicts: list[bool | None], groups: list[str | None], label: str):
    by_group: dict[str, list[float]] = defaultdict(list)
    for verdict, group in zip(verdicts, groups, strict=True):
        if verdict is not None and group is not None:
            by_group[group].append(float(verdict))
    return {f"{name}/{label}={g}": mean_metric(v) for g, v in sorted(by_group.items())}


@register_scorer("math")
def math_scorer(spec: TaskSpec, docs, completions) -> Scored:
    from evalsuite.scoring.math.grade import grade_math

    args = spec.scorer_args
    rows, owners = [], []
    for i, (doc, outs) in enumerate(zip(docs, completions, strict=True)):
        gold = (
            {"gold": str(doc[args["gold_field"]])}
            if "gold_field" in args
            else {"solution": doc[args.get("solution_field", "solution")]}
        )
        for k, c in enumerate(outs):
            rows.append(
                {
                    "id": f"{i}:{k}",
                    "prediction": c.text,
                    **gold,
                    "subject": doc.get(args.get("subject_field", "subject")),
                    "level": doc.get(args.get("level_field", "level")),
                }
            )
            owners.append((i, k))
    report = grade_math(
        rows,
        mode=args.get("mode", "both"),
        workers=int(args.get("workers") or os.cpu_count() or 1),
        timeout=float(args.get("timeout", 5.0)),
    )
    samples: list[list[dict]] = [[] for _ in docs]
    for (i, k), s in zip(owners, report.samples, strict=True):
        samples[i].append(
            {
                "sample_index": k,
                "verdict": s.paper if s.paper is not None else s.robust,
                "details": {
                    "extracted": s.extracted,
                    "gold": s.gold,
                    "paper": s.paper,
                    "robust": s.robust,
                    "status": s.status,
                    "subject": s.subject,
                    "level": s.level,
                },
            }
        )
    metrics: dict[str, Metric] = {}
    for name, attr in (("acc", "paper"), ("acc_robust", "robust")):
        verdicts = [getattr(s, attr) for s in report.samples]
        if all(v is None for v in verdicts):
            continue
        metrics[name] = mean_metric([float(v) for v in verdicts if v is not None])
        metrics |= _breakdowns(name, verdicts, [s.subject for s in report.samples], "subject")
        metrics |= _breakdowns(name, verdicts, [s.level for s in report.samples], "level")
    for status, count in report.status_counts().items():
        metrics[f"status/{status}"] = Metric(float(count), None, report.n)
    return Scored(metrics, samples)
