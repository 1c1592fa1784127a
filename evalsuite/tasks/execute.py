"""Run one prepared task against an engine: requests out, verdicts and metrics back.

Every answer goes through the resume cache first, so a rerun asks the engine only for what a
crashed run did not finish, and ends with exactly the same samples.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.engines import Completion, Engine
from evalsuite.evaluation.resume import ResumeCache, request_key
from evalsuite.tasks.data import TaskData, load_task_data
from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.lm_eval_tasks import (
    prepare_lm_eval_task,
    run_lm_eval_task,
    scored_from_record,
)
from evalsuite.tasks.scorers import Scored, get_scorer, mean_metric
from evalsuite.tasks.spec import TaskSpec
from evalsuite.tasks.templates import PromptTemplate

EngineGetter = Callable[[], Engine]
Advance = Callable[[int], None]


@dataclass
class PreparedTask:
    """A task with its documents loaded and prompts rendered: ready to run, nothing started."""

    spec: TaskSpec
    data: TaskData
    prompt_sha256: str
    prompts: list[str] = field(default_factory=list)
    lm_task: Any = None  # lm_eval kind: lm-eval's Task object
    limit: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: TaskSpec, data_dir: Path | None, limit: int | None) -> PreparedTask:
        if spec.kind == "lm_eval":
            import lm_eval
            import lm_eval.tasks

            task, data = prepare_lm_eval_task(spec, data_dir, limit)
            yaml_path = Path(lm_eval.tasks.__file__).parent / spec.lm_eval["yaml"]
            digest = hashlib.sha256(yaml_path.read_bytes() + lm_eval.__version__.encode())
            return cls(spec, data, digest.hexdigest(), lm_task=task, limit=limit)
        data = load_task_data(spec, data_dir, limit)
        template = PromptTemplate(spec)
        prompts = [template.render(d, i) for d, i in zip(data.docs, data.ids, strict=True)]
        return cls(spec, data, template.sha256, prompts, limit=limit)

    @property
    def work_units(self) -> int:
        if self.spec.kind == "generate":
            return len(self.prompts)
        if self.spec.kind == "lm_eval":
            return len(self.data.docs)
        return sum(
            len(self._choices(d, i)) for d, i in zip(self.data.docs, self.data.ids, strict=True)
        )

    def _choices(self, doc: dict, doc_id: str) -> list[str]:
        choices = doc.get(self.spec.choices_field)
        if not isinstance(choices, list) or not choices:
            raise TaskError(
                f"{self.data.origin}: document {doc_id} has no list in {self.spec.choices_field!r}"
            )
        return [str(c) for c in choices]

    def _target(self, doc: dict, doc_id: str, choices: list[str]) -> int:
        target = doc.get(self.spec.target_field)
        if isinstance(target, str) and not target.isdigit():
            if target in choices:
                return choices.index(target)
        elif target is not None and 0 <= int(target) < len(choices):
            return int(target)
        raise TaskError(
            f"{self.data.origin}: document {doc_id} has target {target!r} in "
            f"{self.spec.target_field!r}, which is neither a choice index nor a choice"
        )

    def run(
        self, engine: EngineGetter, cache: ResumeCache, identity: list[Any], advance: Advance
    ) -> Scored:
        if self.spec.kind == "generate":
            return self._run_generate(engine, cache, identity, advance)
        if self.spec.kind == "lm_eval":
            return self._run_lm_eval(engine, cache, identity, advance)
        return self._run_multiple_choice(engine, cache, identity, advance)

    def _run_lm_eval(self, engine, cache, identity, advance) -> Scored:
        """The whole task is one cache entry: lm-eval scores all documents in one pass."""
        key = request_key(
            # prompt_sha256 covers lm-eval's task file and version
            identity,
            "lm_eval",
            self.spec.settings_digest(),
            self.prompt_sha256,
            self.data.sha256,
            len(self.data.docs),
        )
        started = time.perf_counter()
        record = cache.get(key)
        if record is None:
            llm = engine()  # its start or swap is timed apart (engine_start_s / engine_swap_s)
            started = time.perf_counter()
            seed = self.spec.sampling.seed or 0
            record = run_lm_eval_task(self.spec, self.lm_task, llm, self.limit, seed)
            cache.add(key, record)
        advance(len(self.data.docs))
        self.timings["lm_eval_s"] = time.perf_counter() - started
        return scored_from_record(record)

    def _run_generate(self, engine, cache, identity, advance) -> Scored:
        requests = [self.spec.request(p) for p in self.prompts]
        keys = [
            request_key(identity, "generate", doc_id, r.prompt, r.sampling_dict())
            for doc_id, r in zip(self.data.ids, requests, strict=True)
        ]
        missing = [i for i, k in enumerate(keys) if cache.get(k) is None]
        advance(len(keys) - len(missing))
        failed: dict[int, list[Completion]] = {}  # not cached: a rerun asks the engine again
        started = time.perf_counter()
        if missing:
            llm = engine()  # its start or swap is timed apart (engine_start_s / engine_swap_s)
            started = time.perf_counter()

            def keep(j: int, completions: list[Completion]) -> None:
                i = missing[j]
                if all(c.answered for c in completions):
                    rows = [c.__dict__ for c in completions]
                    cache.add(keys[i], {"doc_id": self.data.ids[i], "completions": rows})
                else:
                    failed[i] = completions
                advance(1)

            llm.generate([requests[i] for i in missing], on_done=keep)
        self.timings["generate_s"] = time.perf_counter() - started
        completions = [
            failed.get(i) or [Completion(**c) for c in cache.get(k)["completions"]]
            for i, k in enumerate(keys)
        ]
        # a sample the engine did not finish is a failure with its reason: the scorer sees no
        # text for it (so it cannot pass) and the record says why
        shown = [
            [c if c.answered else Completion("", 0, c.finish_reason) for c in outs]
            for outs in completions
        ]
        started = time.perf_counter()
        scored = get_scorer(self.spec)(self.spec, self.data.docs, shown)
        self.timings["score_s"] = time.perf_counter() - started
        for per_doc, outs in zip(scored.samples, completions, strict=True):
            for record, c in zip(per_doc, outs, strict=True):
                record.update(
                    completion=c.text, finish_reason=c.finish_reason, num_tokens=c.num_tokens
                )
                if not c.answered:
                    record.update(verdict=False, engine_failure=c.finish_reason)
        scored.engine_failures = sum(not c.answered for outs in completions for c in outs)
        return scored

    def _run_multiple_choice(self, engine, cache, identity, advance) -> Scored:
        docs, ids = self.data.docs, self.data.ids
        choices = [self._choices(d, i) for d, i in zip(docs, ids, strict=True)]
        targets = [self._target(d, i, c) for d, i, c in zip(docs, ids, choices, strict=True)]
        prefix = self.spec.choice_prefix
        keys = [
            request_key(identity, "loglikelihood", i, p, [prefix + c for c in cs])
            for i, p, cs in zip(ids, self.prompts, choices, strict=True)
        ]
        missing = [i for i, k in enumerate(keys) if cache.get(k) is None]
        done = set(range(len(keys))) - set(missing)
        advance(sum(len(choices[i]) for i in done))
        started = time.perf_counter()
        if missing:
            llm = engine()  # its start or swap is timed apart (engine_start_s / engine_swap_s)
            started = time.perf_counter()
            pairs = [
                llm.encode_pair(self.prompts[i], prefix + c) for i in missing for c in choices[i]
            ]
            results = iter(zip(pairs, llm.loglikelihood_tokens(pairs), strict=True))
            for i in missing:
                scored = [next(results) for _ in choices[i]]
                cut = llm.cut_by_limit([pair for pair, _ in scored])
                lls = [ll for _, ll in scored]
                cache.add(keys[i], {"doc_id": ids[i], "loglikelihoods": lls, "cut": cut})
                advance(len(choices[i]))
        self.timings["loglikelihood_s"] = time.perf_counter() - started
        cut_requests = sum(cache.get(key).get("cut", 0) for key in keys)
        acc, acc_norm, samples = [], [], []
        for i, key in enumerate(keys):
            lls = [ll for ll, _ in cache.get(key)["loglikelihoods"]]
            pred = max(range(len(lls)), key=lls.__getitem__)
            normed = [ll / len(c) for ll, c in zip(lls, choices[i], strict=True)]
            pred_norm = max(range(len(normed)), key=normed.__getitem__)
            acc.append(float(pred == targets[i]))
            acc_norm.append(float(pred_norm == targets[i]))
            samples.append(
                [
                    {
                        "sample_index": 0,
                        "verdict": pred == targets[i],
                        "completion": None,
                        "details": {
                            "loglikelihoods": lls,
                            "pred": pred,
                            "pred_norm": pred_norm,
                            "target": targets[i],
                            "acc_norm": pred_norm == targets[i],
                        },
                    }
                ]
            )
        metrics = {"acc": mean_metric(acc), "acc_norm": mean_metric(acc_norm)}
        return Scored(metrics, samples, cut_requests=cut_requests)
