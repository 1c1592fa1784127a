"""A task as declared in YAML: what is evaluated, with which data, prompt, sampling and scorer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from evalsuite.engines import GenerationRequest
from evalsuite.tasking.errors import TaskError

TASK_KINDS = ("generate", "multiple_choice")
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


@dataclass(frozen=True)
class TaskSpec:
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

    def with_overrides(
        self, n: int | None = None, max_tokens: int | None = None, seed: int | None = None
    ) -> TaskSpec:
        """The task with the CLI's --n-samples / --max-new-tokens / --seed applied."""
        changes = {
            k: v for k, v in (("n", n), ("max_tokens", max_tokens), ("seed", seed)) if v is not None
        }
        return replace(self, sampling=replace(self.sampling, **changes)) if changes else self

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
        d["source"] = str(self.source)
        d["stop"] = list(self.stop)
        return d

    def config_hash(self) -> str:
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
    _expect(not unknown, path, f"unknown field(s) {sorted(unknown)}; see tasks/README.md")
    _expect(isinstance(raw.get("name"), str), path, "needs a 'name'")
    kind = raw.get("kind", "generate")
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
    )
