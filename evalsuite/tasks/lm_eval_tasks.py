"""lm-eval's own task definitions, fed from local files when --data-dir is given.

The task's YAML is read from the installed lm-eval (prompt, choices, target, process_docs,
metrics: all lm-eval's); only ``custom_dataset`` is ours when the documents come from disk.
A job then runs ``simple_evaluate`` with the bridge LM over the already-loaded engine.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from evalsuite.engines import Engine
from evalsuite.tasks.data import TaskData
from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.lm_eval_data import LOADERS
from evalsuite.tasks.scorers import Metric, Scored
from evalsuite.tasks.spec import TaskSpec

_SPLITS = ("training_split", "validation_split", "test_split", "fewshot_split")


def lm_eval_config(spec: TaskSpec, data_dir: Path | None) -> tuple[dict[str, Any], str]:
    """lm-eval's config for the task (functions resolved), and where its documents come from."""
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(lm_eval.tasks.__file__).parent / spec.lm_eval["yaml"]
    if not path.is_file():
        raise TaskError(f"{spec.source}: lm-eval has no task file {spec.lm_eval['yaml']!r}")
    config = load_yaml(path, resolve_func=True)
    config.pop("include", None)
    if config.get("task") != spec.lm_eval["task"]:
        raise TaskError(f"{path} defines task {config.get('task')!r}, not {spec.lm_eval['task']!r}")
    if data_dir is None or not spec.data.loader:
        return config, f"lm-eval:{config.get('dataset_path')}"
    if spec.data.loader not in LOADERS:
        raise TaskError(
            f"{spec.source}: unknown loader {spec.data.loader!r}; known: "
            f"{', '.join(sorted(LOADERS))}"
        )
    import datasets

    splits = LOADERS[spec.data.loader](Path(data_dir))
    dataset = {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    config["custom_dataset"] = lambda **_: dataset
    for key in _SPLITS:  # splits we have no local copy of (train) are not offered
        if config.get(key) and config[key] not in dataset:
            config[key] = None
    return config, f"{data_dir}:{spec.data.loader}"


def prepare_lm_eval_task(spec: TaskSpec, data_dir: Path | None, limit: int | None):
    """(lm-eval Task, TaskData): the data hash is over lm-eval's own processed documents, so
    local and public copies that give lm-eval the same documents share it."""
    from lm_eval.api.task import ConfigurableTask

    config, origin = lm_eval_config(spec, data_dir)
    try:
        task = ConfigurableTask(config=config)
        docs = [dict(d) for d in task.eval_docs]
    except TaskError:
        raise
    except Exception as e:  # dataset download refused offline, and the like
        raise TaskError(
            f"task {spec.name}: lm-eval could not load its documents ({type(e).__name__}: {e}); "
            "pass --data-dir DIR with local copies (layout: docs/data.md)"
        ) from e
    digest = hashlib.sha256(json.dumps(docs, sort_keys=True, default=str).encode()).hexdigest()
    ids = [str(i) for i in range(len(docs))]
    if limit is not None:
        docs, ids = docs[:limit], ids[:limit]
    return task, TaskData(docs, ids, digest, origin, len(task.eval_docs))


def _git_hash_quietly() -> str | None:
    """lm-eval's ``get_git_commit_hash`` without git's stderr.

    lm-eval asks ``git describe`` for the commit of the current directory for every task;
    outside a checkout git prints "fatal: not a git repository" once per task, which a
    user of ``evalsuite eval`` would take for an error of ours. Same answer, no noise.
    """
    try:
        out = subprocess.check_output(["git", "describe", "--always"], stderr=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    return out.strip().decode()


def run_lm_eval_task(spec: TaskSpec, task, engine: Engine, limit: int | None, seed: int) -> dict:
    """simple_evaluate over our engine; returns a JSON-able record (metrics, samples)."""
    import lm_eval.evaluator
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    lm_eval.evaluator.get_git_commit_hash = _git_hash_quietly

    from evalsuite.engines.lm_eval_bridge import EngineLM

    shots = int(spec.lm_eval.get("num_fewshot", 0))
    model = EngineLM(engine, seed=seed)
    try:
        out = simple_evaluate(
            model=model,
            tasks=[task],
            # the task is built already: without an index of lm-eval's thousands of YAML
            # files, which simple_evaluate would otherwise rebuild (~5 s) for every task
            task_manager=TaskManager(include_defaults=False),
            num_fewshot=shots,
            limit=limit,
            log_samples=True,
            verbosity="WARNING",
        )
    except Exception as e:
        if shots and "fewshot" in str(e).lower():
            raise TaskError(
                f"task {spec.name}: no documents to draw {shots} shots from "
                f"({e}); use --num-fewshot 0 with these data"
            ) from e
        raise
    name = spec.lm_eval["task"]
    raw = out["results"][name]
    n = int(raw.get("sample_len") or len(out["samples"][name]))
    metrics = {}
    for key, value in raw.items():
        metric, _, filt = key.partition(",")
        if filt and "_stderr" not in metric and isinstance(value, int | float):
            stderr = raw.get(f"{metric}_stderr,{filt}")
            metrics[metric] = {
                "value": float(value),
                "n": n,
                "stderr": float(stderr) if isinstance(stderr, int | float) else None,
            }
    samples = []
    for s in sorted(out["samples"][name], key=lambda s: int(s["doc_id"])):
        lls = [float(r[0]) for r in s["filtered_resps"]]
        samples.append(
            {
                "doc_id": str(s["doc_id"]),
                "verdict": bool(s.get(spec.lm_eval["metric"])),
                "details": {
                    "loglikelihoods": lls,
                    "is_greedy": [bool(r[1]) for r in s["filtered_resps"]],
                    "target": s["target"],
                    "context": s["arguments"][0][0] if s["arguments"] else None,
                    "choices": [a[1] for a in s["arguments"]],
                    **{m: float(s[m]) for m in metrics if m in s},
                },
            }
        )
    record = {"metrics": metrics, "samples": samples, "num_fewshot": shots}
    return {**record, "cut_requests": model.cut_requests}


def scored_from_record(record: dict) -> Scored:
    metrics = {k: Metric(v["value"], v["stderr"], v["n"]) for k, v in record["metrics"].items()}
    samples = [
        [{"sample_index": 0, "completion": None, "verdict": s["verdict"], "details": s["details"]}]
        for s in record["samples"]
    ]
    return Scored(metrics, samples, cut_requests=record.get("cut_requests", 0))
