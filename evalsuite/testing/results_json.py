"""A valid ``results.json`` object with the numbers a test or benchmark chooses.

For code that posts results to the API without running the runner (the dashboard's seed, the
API benchmark): built through :class:`~evalsuite.results_schema.ResultsFile`, so it is
accepted exactly when the runner's own would be. Each task gets a generate-task config whose
data and prompt hashes are ``sha-<task>`` and ``prompt-<task>``.
"""

from __future__ import annotations

from typing import Any

from evalsuite.results_schema import ResultsFile

DEFAULT_MODEL = {
    "materialization": "merged",
    "model_dir": "/cache/merged/synthetic",
    "dtype": "bfloat16",
    "engine": {"name": "vllm", "version": "0.32.0"},
}


def task_config(task: str) -> dict[str, Any]:
    """A greedy generate task's config, as ``TaskSpec.config()`` plus the runner's fields."""
    return {
        "name": task,
        "kind": "generate",
        "source": f"tasks/{task}.yaml",
        "data": {"file": f"{task}.jsonl"},
        "sampling": {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "seed": 0,
                     "max_tokens": 1024, "max_total_tokens": None},
        "data_sha256": f"sha-{task}",
        "data_origin": f"tasks/{task}.jsonl",
        "prompt_sha256": f"prompt-{task}",
    }  # fmt: skip


def results_json(
    task_metrics: dict[str, dict[str, float]],
    aggregates: dict[str, float] | None = None,
    *,
    n: int = 164,
    stderr: float | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{task: {metric: value}}`` (and ``{aggregate: value}`` over each task's first metric)
    as a ``results.json`` object."""
    tasks = {
        task: {
            "metrics": {m: {"value": v, "stderr": stderr, "n": n} for m, v in metrics.items()},
            "partial": False,
            "n_docs": n,
            "n_docs_total": n,
            "config": task_config(task),
        }
        for task, metrics in task_metrics.items()
    }
    recipe = {task: next(iter(metrics)) for task, metrics in task_metrics.items() if metrics}
    results = ResultsFile.model_validate(
        {
            "partial": False,
            "created": "2026-01-01T00:00:00+00:00",
            "checkpoint": {"kind": "lora", "path": "run/checkpoint-1", "sha256": "0" * 64},
            "base": "/models/base",
            "model": model or DEFAULT_MODEL,
            "tasks": tasks,
            "aggregates": {
                name: {
                    "value": value,
                    "metrics": recipe,
                    "parts": {t: task_metrics[t][m] for t, m in recipe.items()},
                    "partial": False,
                }
                for name, value in (aggregates or {}).items()
            },
        }
    )
    return results.model_dump(mode="json")
