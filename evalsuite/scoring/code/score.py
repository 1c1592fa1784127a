"""Score HumanEval+ samples: load, get the answers, run every program sandboxed, aggregate.

    report = score_humaneval_plus("samples.jsonl", dataset="HumanEvalPlus.jsonl.gz")
    report.to_json()["pass@1"]

Modes: ``evalplus`` (``evalplus.evaluate``: base and plus inputs in separate runs, per-input
limits; headline = plus-correct, i.e. base and plus both pass) and ``paper`` (bigcode
``humanevalplus``: one program with the combined check, 20 s; headline = that check; its
"base" is whether the inputs from base_input, which come first, all passed).

``dedup`` (default on): a program that appears several times for the same task is run
once and its copies share the verdict. EvalPlus and bigcode run every copy; the verdicts are
the same for any program whose outcome does not depend on chance or on timing (for one
that does, the copies get one draw instead of several).
"""

from __future__ import annotations

import os
import reprlib
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from evalsuite.scoring.code import evalplus as code_evalplus
from evalsuite.scoring.code import paper as code_paper
from evalsuite.scoring.code.data import Dataset, evalplus_cache_file, load_dataset, resolve_dataset
from evalsuite.scoring.code.evalplus import EvalPlusChecker, Outcome
from evalsuite.scoring.code.passk import DEFAULT_KS, pass_at_k
from evalsuite.scoring.code.samples import CompletionStyle, Sample, read_samples
from evalsuite.scoring.code.truth import GroundTruth, truth_cache_dir
from evalsuite.scoring.errors import ScoringError
from evalsuite.scoring.sandbox.box import Job, Sandbox

Mode = Literal["evalplus", "paper"]
MODES: tuple[Mode, ...] = ("evalplus", "paper")
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxlevel = 120, 120, 8, 3


@dataclass
class SampleResult:
    task_id: str
    index: int
    status: str  # pass / fail / error / timeout (the headline check)
    base_status: str
    plus_status: str
    reference: dict[str, str]  # what EvalPlus / bigcode would report
    failed_split: str | None = None
    failed_index: int | None = None
    failed_input: str | None = None
    detail: str = ""
    seconds: float = 0.0
    output: str = ""  # start of the program's stdout/stderr (the failing run's, if any)


@dataclass
class Report:
    mode: Mode
    dataset: str
    samples: list[SampleResult]
    n_tasks_in_dataset: int
    isolation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    truth_computed: int = 0
    programs_run: int = 0  # distinct (task, program) pairs actually executed

    def _counts(self, key: str) -> list[tuple[int, int]]:
        by_task: dict[str, list[int]] = {}
        for s in self.samples:
            passed = s.status == "pass" if key == "status" else getattr(s, key) == "pass"
            by_task.setdefault(s.task_id, []).append(int(passed))
        return [(len(v), sum(v)) for v in by_task.values()]

    def pass_at_k(self, key: str = "status") -> dict[str, float | None]:
        return pass_at_k(self._counts(key), DEFAULT_KS)

    def per_task(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in self.samples:
            out.setdefault(s.task_id, []).append(s.status)
        return out

    def notes(self) -> list[str]:
        notes = []
        smallest = min((n for n, _ in self._counts("status")), default=0)
        for k in DEFAULT_KS:
            if smallest < k:
                notes.append(f"pass@{k} not reported: some task has {smallest} < {k} samples")
        tasks = len(self.per_task())
        if tasks < self.n_tasks_in_dataset:
            notes.append(f"only {tasks} of {self.n_tasks_in_dataset} tasks have samples")
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            **self.pass_at_k("status"),
            "base": self.pass_at_k("base_status"),
            "plus": self.pass_at_k("plus_status"),
            "per_task": self.per_task(),
            "mode": self.mode,
            "dataset": self.dataset,
            "n_tasks": len(self.per_task()),
            "n_samples": len(self.samples),
            "notes": self.notes(),
            "isolation": self.isolation,
            "seconds": round(self.seconds, 3),
            "programs_run": self.programs_run,
            "samples": [asdict(s) for s in self.samples],
        }


def _failure(problem_inputs: list[Any], outcome: Outcome) -> str | None:
    if outcome.failed_index is None or outcome.failed_index >= len(problem_inputs):
        return None
    return _short.repr(problem_inputs[outcome.failed_index])


def _evalplus_result(
    sample: Sample, inputs: dict[str, list[Any]], out: dict[str, Outcome]
) -> SampleResult:
    base, plus = out["base"], out["plus"]
    first = "base" if base.status != "pass" else "plus" if plus.status != "pass" else None
    status = "pass" if first is None else out[first].status
    failed = out[first] if first else None
    return SampleResult(
        task_id=sample.task_id,
        index=sample.index,
        status=status,
        base_status=base.status,
        plus_status=plus.status,
        reference={"base_status": base.reference_status, "plus_status": plus.reference_status},
        failed_split=first,
        failed_index=failed.failed_index if failed else None,
        failed_input=_failure(inputs[first], failed) if failed and first else None,
        detail=failed.detail if failed else "",
        seconds=base.seconds + plus.seconds,
        output=(failed or base).output,
    )


def _paper_result(sample: Sample, checker: code_paper.PaperChecker, out: Outcome) -> SampleResult:
    base_ok = out.status == "pass" or checker.base_passed()
    split, index = (None, None)
    if out.failed_index is not None and out.failed_index < checker.n:
        split, index = checker.where(out.failed_index)
    return SampleResult(
        task_id=sample.task_id,
        index=sample.index,
        status=out.status,
        base_status="pass" if base_ok else out.status,
        plus_status=out.status,
        reference={"result": out.reference_status},
        failed_split=split,
        failed_index=index,
        failed_input=_failure(checker.inputs, out),
        detail=out.detail,
        seconds=out.seconds,
        output=out.output,
    )


def _hidden_paths(dataset: Dataset) -> list[Path]:
    """Where answers live on disk: hidden from the sandbox (it also runs as another uid).

    The dataset's whole directory when that is safe (it holds no Python the sandbox
    imports from), else just the file; other copies elsewhere stay readable if they are.
    """
    data = dataset.path.resolve()
    needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *sys.path) if p]
    folder = data.parent
    if folder != Path("/") and not any(p == folder or folder in p.parents for p in needed):
        data = folder
    paths = [data, truth_cache_dir(), evalplus_cache_file().parent]
    return [p for p in paths if p.exists()]


def score_humaneval_plus(
    samples: str | Path,
    *,
    dataset: str | Path | None = None,
    mode: Mode = "evalplus",
    workers: int | None = None,
    min_time_limit: float = code_evalplus.DEFAULT_MIN_TIME_LIMIT,
    gt_time_limit_factor: float = code_evalplus.DEFAULT_FACTOR,
    quirks: bool = False,
    isolation: str = "auto",
    completion_style: CompletionStyle = "protocol",
    on_progress: Callable[[int, int], None] | None = None,
    on_truth_progress: Callable[[int, int], None] | None = None,
    dedup: bool = True,
) -> Report:
    """Score a samples file; raises ScoringError for input that cannot be scored."""
    if mode not in MODES:
        raise ScoringError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    started = time.perf_counter()
    workers = workers or len(os.sched_getaffinity(0))
    data = load_dataset(resolve_dataset(dataset))
    every = read_samples(samples, data, completion_style)
    # identical programs for the same task run once (sampling at low temperature repeats
    # itself a lot); their copies share the verdict
    first: dict[tuple[str, str], int] = {}
    items: list[Sample] = []
    for s in every:
        key = (s.task_id, s.program)
        if not dedup or key not in first:
            first[key] = len(items)
            items.append(s)
    task_ids = list(dict.fromkeys(s.task_id for s in items))
    problems = {t: data.problems[t] for t in task_ids}
    truth = GroundTruth(data, workers=workers, task_ids=task_ids, on_progress=on_truth_progress)
    if mode == "evalplus":
        tasks = code_evalplus.sandbox_tasks(problems, truth, min_time_limit, gt_time_limit_factor)
        jobs: list[Job] = []
        for s in items:
            jobs += [
                code_evalplus.job(s.task_id, split, s.program, tasks[s.task_id])
                for split in ("base", "plus")
            ]
    else:
        tasks = code_paper.sandbox_tasks(problems, truth)
        jobs = [code_paper.job(s.task_id, s.program, tasks[s.task_id]) for s in items]
    # longest first: a heavy task started last would leave the other workers idle at the end
    order = sorted(range(len(jobs)), key=lambda i: -_cost(truth, jobs[i]))
    checkers: dict[int, Any] = {}
    partial: dict[int, dict[str, Outcome]] = {}
    results: list[SampleResult | None] = [None] * len(items)
    done = 0

    def verifier_for(position: int, job: Job) -> Any:
        problem = problems[job.task]
        if mode == "paper":
            checker: Any = code_paper.PaperChecker(problem, truth, quirks)
        else:
            checker = EvalPlusChecker(problem, job.split, truth, quirks)
        checkers[order[position]] = checker
        return checker

    def finished(position: int, outcome: Outcome) -> None:
        nonlocal done
        job_index = order[position]
        if mode == "paper":
            sample = items[job_index]
            results[job_index] = _paper_result(sample, checkers.pop(job_index), outcome)
        else:
            sample_index, split = divmod(job_index, 2)
            checkers.pop(job_index)
            got = partial.setdefault(sample_index, {})
            got["base" if split == 0 else "plus"] = outcome
            if len(got) < 2:
                return
            sample = items[sample_index]
            p = problems[sample.task_id]
            inputs = {"base": p.base_input, "plus": p.plus_input}
            results[sample_index] = _evalplus_result(sample, inputs, partial.pop(sample_index))
        done += 1
        if on_progress is not None:
            on_progress(done, len(items))

    hide = _hidden_paths(data)
    with Sandbox(tasks, workers=workers, isolation=isolation, hide=hide) as box:
        box.run([jobs[i] for i in order], verifier_for, finished)
        info = box.info
    final = []
    for s in every:
        ran = results[first[(s.task_id, s.program)]] if dedup else results[len(final)]
        assert ran is not None
        final.append(ran if ran.index == s.index else replace(ran, index=s.index))
    return Report(
        mode=mode,
        dataset=str(data.path),
        samples=final,
        n_tasks_in_dataset=len(data.problems),
        isolation=info,
        seconds=time.perf_counter() - started,
        truth_computed=truth.computed,
        programs_run=len(items),
    )


def _cost(truth: GroundTruth, job: Job) -> float:
    facts = truth.tasks[job.task]
    if job.split == "paper":
        return sum(facts.base.times) + sum(facts.plus.times)
    return sum(getattr(facts, job.split).times)
