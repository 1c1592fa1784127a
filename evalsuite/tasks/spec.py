"""A task as declared in YAML: what is evaluated, with which data, prompt, sampling and scorer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from evalsuite.engines import GenerationRequest
from evalsuite.tasks.errors import TaskError

TASK_KINDS = ("generate", "multiple_choice", "lm_eval")
_LM_EVAL_KEYS = {"task", "yaml", "metric", "num_fewshot"}
_SAMPLING_KEYS = {"n", "temperature", "top_p", "top_k", "seed", "max_tokens", "max_total_tokens"}


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = 0
    max_tokens: int = 256
    max_total_tokens: int | None = None


@dataclass(frozen=True)
class DataSource:
    file: str | None = None  # beside the YAML
    local: str | None = None  # under --data-dir
    hf: dict[str, Any] | None = None  # {path, name, split}
    id_field: str | None = None
    loader: str | None = None  # lm_eval kind: a local loader in tasks.lm_eval_data
    process: str | None = None  # derived fields: a name in tasks.doc_processors


@dataclass(frozen=True)
class MetricDecl:
    """A metric a task reports, as the protocol names it (lm-eval's ``metric_list`` idea)."""

    metric: str
    display: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class TaskSpec:
    """One task YAML, checked. ``metric_list`` is presentation (which metric heads the task,
    its direction and display name): it stays out of ``config()``, so it never changes what
    makes two scores comparable or which cached answers a run reuses."""

    name: str
    kind: str
    source: Path  # the YAML file
    data: DataSource
    prompt_file: str | None = None
    prompt_template: str | None = None
    description: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    scorer: str | None = None
    scorer_args: dict[str, Any] = field(default_factory=dict)
    choices_field: str | None = None
    target_field: str | None = None
    choice_prefix: str = " "
    # lm_eval kind: lm-eval's own task {task, yaml (under lm_eval/tasks), metric, num_fewshot}
    lm_eval: dict[str, Any] | None = None
    metric_list: tuple[MetricDecl, ...] = ()  # the first is the headline

    def with_overrides(
        self,
        n: int | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        num_fewshot: int | None = None,
    ) -> TaskSpec:
        """The task with the CLI's --n-samples / --max-new-tokens / --seed / --num-fewshot."""
        spec = self
        changes = {
            k: v for k, v in (("n", n), ("max_tokens", max_tokens), ("seed", seed)) if v is not None
        }
        if changes:
            spec = replace(spec, sampling=replace(spec.sampling, **changes))
        if num_fewshot is not None and spec.lm_eval is not None:
            spec = replace(spec, lm_eval={**spec.lm_eval, "num_fewshot": num_fewshot})
        return spec

    def request(self, prompt: str) -> GenerationRequest:
        s = self.sampling
        return GenerationRequest(
            prompt=prompt,
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=s.max_tokens,
            stop=self.stop,
            seed=s.seed,
            max_total_tokens=s.max_total_tokens,
        )

    def config(self) -> dict[str, Any]:
        """Everything that defines the task's numbers, recorded with them."""
        d = asdict(self)
        d.pop("metric_list")
        d["source"] = str(self.source)
        d["stop"] = list(self.stop)
        return d

    def settings_digest(self) -> str:
        """sha256 of the task's settings without its file path and description: part of the
        resume cache's key (a moved or re-described task keeps its cached answers). Not what
        makes scores comparable: that is ``evalsuite.comparable.comparability_hash``."""
        d = self.config()
        d.pop("source")
        d.pop("description")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise TaskError(f"{path}: {what}")


def parse_task(path: Path) -> TaskSpec:
    """Read and check one task YAML; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TaskError(f"{path}: not readable YAML ({e})") from e
    _expect(isinstance(raw, dict), path, "expected a mapping of task fields")
    unknown = (
        set(raw)
        - {f for f in TaskSpec.__dataclass_fields__ if f != "source"}
        - {"prompt", "data", "sampling"}
    )
    kind = raw.get("kind", "generate")
    if kind == "lm_eval":
        return _parse_lm_eval_task(path, raw, unknown)
    _expect(not unknown, path, f"unknown field(s) {sorted(unknown)} (see docs/tasks.md)")
    _expect(isinstance(raw.get("name"), str), path, "needs a 'name'")
    _expect(kind in TASK_KINDS, path, f"kind {kind!r} is not one of {TASK_KINDS}")
    data = raw.get("data") or {}
    _expect(
        isinstance(data, dict) and (data.get("file") or data.get("local") or data.get("hf")),
        path,
        "'data' needs 'file', 'local' or 'hf'",
    )
    prompt = raw.get("prompt") or {}
    _expect(
        isinstance(prompt, dict) and bool(prompt.get("file")) != bool(prompt.get("template")),
        path,
        "'prompt' needs exactly one of 'file' or 'template'",
    )
    sampling = raw.get("sampling") or {}
    bad = set(sampling) - _SAMPLING_KEYS
    _expect(
        not bad, path, f"unknown sampling key(s) {sorted(bad)}; known: {sorted(_SAMPLING_KEYS)}"
    )
    if kind == "multiple_choice":
        _expect(
            raw.get("choices_field") and raw.get("target_field"),
            path,
            "a multiple_choice task needs 'choices_field' and 'target_field'",
        )
    else:
        _expect(isinstance(raw.get("scorer"), str), path, "a generate task needs a 'scorer'")
    return TaskSpec(
        name=raw["name"],
        kind=kind,
        source=path,
        data=DataSource(**{k: data.get(k) for k in DataSource.__dataclass_fields__}),
        prompt_file=prompt.get("file"),
        prompt_template=prompt.get("template"),
        description=raw.get("description", ""),
        sampling=Sampling(**sampling),
        stop=tuple(raw.get("stop") or ()),
        scorer=raw.get("scorer"),
        scorer_args=raw.get("scorer_args") or {},
        choices_field=raw.get("choices_field"),
        target_field=raw.get("target_field"),
        choice_prefix=raw.get("choice_prefix", " "),
        metric_list=_metric_list(path, raw),
    )


def _parse_lm_eval_task(path: Path, raw: dict[str, Any], unknown: set[str]) -> TaskSpec:
    """An lm-eval task run as lm-eval defines it; we only choose where its documents come from."""
    _expect(not unknown, path, f"unknown field(s) {sorted(unknown)} (see docs/tasks.md)")
    _expect(isinstance(raw.get("name"), str), path, "needs a 'name'")
    spec = raw.get("lm_eval") or {}
    _expect(
        isinstance(spec, dict) and {"task", "yaml", "metric"} <= set(spec),
        path,
        "'lm_eval' needs 'task', 'yaml' and 'metric'",
    )
    _expect(set(spec) <= _LM_EVAL_KEYS, path, f"'lm_eval' takes only {sorted(_LM_EVAL_KEYS)}")
    data = raw.get("data") or {}
    return TaskSpec(
        name=raw["name"],
        kind="lm_eval",
        source=path,
        data=DataSource(**{k: data.get(k) for k in DataSource.__dataclass_fields__}),
        description=raw.get("description", ""),
        lm_eval={"num_fewshot": 0, **spec},
        metric_list=_metric_list(path, raw)
        or (MetricDecl(spec["metric"], f"{raw['name']} {spec['metric']}"),),
    )


def _metric_list(path: Path, raw: dict[str, Any]) -> tuple[MetricDecl, ...]:
    """``metric_list: [{metric, display, higher_is_better}]``, checked."""
    entries = raw.get("metric_list") or []
    ok = isinstance(entries, list) and all(
        isinstance(e, dict)
        and isinstance(e.get("metric"), str)
        and isinstance(e.get("display"), str)
        and isinstance(e.get("higher_is_better", True), bool)
        and set(e) <= {"metric", "display", "higher_is_better"}
        for e in entries
    )
    _expect(ok, path, "'metric_list' must be a list of {metric, display, higher_is_better}")
    return tuple(MetricDecl(**e) for e in entries)
