"""Synthetic results directories in the runner's exact format, for gate tests and demos.

``results.json`` carries what ``evalsuite.evaluation.runner.evaluate`` writes (top-level
``partial``, ``checkpoint``, ``model`` with materialisation/dtype/engine, per task
``metrics`` with value, stderr and n, ``partial``, ``config`` with data and prompt sha256
and sampling) and
``samples_<task>.jsonl`` the rows the runner writes (``doc_id``, ``prompt_sha256``,
``sample_index``, ``verdict``, ``details``, ``completion``), per task kind as its scorer
fills ``details``. Metric values are plain means over the rows, computed here.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.scoring.code.passk import pass_at_k

_SAMPLING_GREEDY = {
    "n": 1,
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": -1,
    "seed": 0,
    "max_tokens": 1024,
    "max_total_tokens": None,
}


@dataclass
class SyntheticTask:
    """One task's samples rows, stored metrics and config."""

    name: str
    rows: list[dict[str, Any]]
    metrics: dict[str, float]
    config: dict[str, Any]
    partial: bool = False
    n_docs_total: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _config(name: str, kind: str, sampling: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "source": f"/somewhere/tasks/{name}.yaml",
        "data": {"file": f"{name}.jsonl", "local": None, "hf": None, "id_field": None},
        "prompt_file": None,
        "prompt_template": "{{ question }}",
        "description": f"synthetic {name}",
        "sampling": sampling,
        "stop": [],
        "scorer": None,
        "scorer_args": {},
        "lm_eval": None,
        "data_sha256": f"data-{name}",
        "data_origin": f"/somewhere/{name}.jsonl",
        "prompt_sha256": f"prompt-{name}",
        "limit": None,
        **fields,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def code_task(passes: list[list[bool]], name: str = "humaneval_plus") -> SyntheticTask:
    """HumanEval+-shaped: ``passes[doc][sample]``; stores pass@1 and pass@10 (when n >= 10)."""
    rows = []
    for d, per_doc in enumerate(passes):
        for k, ok in enumerate(per_doc):
            status = "pass" if ok else "fail"
            rows.append(
                {
                    "doc_id": f"HumanEval/{d}",
                    "sample_index": k,
                    "verdict": ok,
                    "details": {"status": status, "base_status": status, "plus_status": status},
                    "completion": "    return 1\n",
                }
            )
    counts = [(len(p), sum(p)) for p in passes]
    metrics = {m: v for m, v in pass_at_k(counts).items() if v is not None}
    sampling = {**_SAMPLING_GREEDY, "n": len(passes[0]), "temperature": 0.2, "top_p": 0.95}
    config = _config(name, "generate", sampling, scorer="humaneval_plus")
    return SyntheticTask(name, rows, metrics, config)


def math_task(
    paper: list[bool], robust: list[bool] | None = None, name: str = "math"
) -> SyntheticTask:
    """MATH-shaped: one greedy sample per problem, paper and robust grades in details."""
    robust = paper if robust is None else robust
    rows = [
        {
            "doc_id": f"test/algebra/{d}.json",
            "sample_index": 0,
            "verdict": p,
            "details": {"extracted": "1", "gold": "1", "paper": p, "robust": r, "status": "ok"},
            "completion": "The answer is $\\boxed{1}$.",
        }
        for d, (p, r) in enumerate(zip(paper, robust, strict=True))
    ]
    metrics = {
        "acc": _mean([float(p) for p in paper]),
        "acc_robust": _mean([float(r) for r in robust]),
    }
    config = _config(name, "generate", dict(_SAMPLING_GREEDY), scorer="math")
    return SyntheticTask(name, rows, metrics, config)


def choice_task(name: str, acc: list[bool], acc_norm: list[bool], verdict: str) -> SyntheticTask:
    """lm-eval-shaped (hellaswag, winogrande, arc_challenge): acc and acc_norm per document in
    details as floats, the verdict being the task's own metric."""
    rows = []
    for d, (a, an) in enumerate(zip(acc, acc_norm, strict=True)):
        rows.append(
            {
                "doc_id": str(d),
                "sample_index": 0,
                "verdict": a if verdict == "acc" else an,
                "completion": None,
                "details": {
                    "loglikelihoods": [-1.0, -2.0],
                    "is_greedy": [False, False],
                    "target": 0,
                    "context": "ctx",
                    "choices": [" a", " b"],
                    "acc": float(a),
                    "acc_norm": float(an),
                },
            }
        )
    metrics = {
        "acc": _mean([float(a) for a in acc]),
        "acc_norm": _mean([float(a) for a in acc_norm]),
    }
    lm_eval = {"task": name, "yaml": f"{name}/{name}.yaml", "metric": verdict, "num_fewshot": 0}
    config = _config(name, "lm_eval", dict(_SAMPLING_GREEDY), lm_eval=lm_eval)
    return SyntheticTask(name, rows, metrics, config)


def default_model(**changes: Any) -> dict[str, Any]:
    model = {
        "materialization": "merged",
        "model_dir": "/cache/merged/abc",
        "dtype": "bfloat16",
        "lora_dir": None,
        "lora_name": None,
        "engine": {"name": "vllm", "version": "0.32.0", "settings": {}},
    }
    model.update(changes)
    return model


def write_results_dir(
    out: Path,
    tasks: list[SyntheticTask],
    *,
    model: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """Write ``results.json`` and ``samples_<task>.jsonl`` as the runner does."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task_results = {}
    for t in tasks:
        n_docs = len({r["doc_id"] for r in t.rows})
        task_results[t.name] = {
            "metrics": {m: {"value": v, "stderr": None, "n": n_docs} for m, v in t.metrics.items()},
            "partial": t.partial,
            "n_docs": n_docs,
            "n_docs_total": t.n_docs_total or n_docs,
            "config": copy.deepcopy(t.config),
            "timings": {},
            **t.extra,
        }
        with open(out / f"samples_{t.name}.jsonl", "w") as f:
            for row in t.rows:
                record = {"doc_id": row["doc_id"], "prompt_sha256": t.config["prompt_sha256"]}
                f.write(json.dumps({**record, **row}) + "\n")
    results = {
        "partial": any(t.partial for t in tasks),
        "created": "2026-01-01T00:00:00+00:00",
        "checkpoint": checkpoint
        or {
            "kind": "lora",
            "path": "run/checkpoint-1",
            "sha256": "0" * 64,
            "epoch": 1.0,
            "step": 1,
        },
        "base": "/models/base",
        "model": model or default_model(),
        "tasks": task_results,
        "aggregates": {},
        "timings": {},
        "versions": {"evalsuite": "0.1.0"},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return out
