"""A results directory (``evalsuite eval --out DIR``) as one side of the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalsuite.comparable import task_identity
from evalsuite.gate.evidence import GateInputError, TaskEvidence
from evalsuite.results_schema import ResultsFile, SampleRow, problems


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise GateInputError(f"{path}:{number}: not valid JSON ({e})") from e
    return rows


def read_samples(path: Path) -> list[dict[str, Any]]:
    """A samples file's rows, each checked against :class:`SampleRow` (the error names the
    line and the field)."""
    rows = read_jsonl(path)
    for number, row in enumerate(rows, 1):
        try:
            SampleRow.model_validate(row)
        except ValidationError as e:
            raise GateInputError(
                f"{path}: row {number} is not a samples row as 'evalsuite eval' writes it "
                f"(docs/results.md): {problems(e.errors())}"
            ) from None
    return rows


class ResultsDirSource:
    """Reads ``results.json`` (checked against :class:`ResultsFile`) and
    ``samples_<task>.jsonl`` as the runner writes them."""

    def __init__(self, path: Path | str, label: str):
        self.path = Path(path)
        self.label = label
        self._rows: dict[Path, list[dict[str, Any]]] = {}
        self.name = str(self.path)
        results_file = self.path / "results.json"
        if not results_file.is_file():
            raise GateInputError(
                f"{label}: {results_file} does not exist; pass a directory written by "
                "'evalsuite eval --out DIR'"
            )
        try:
            raw = json.loads(results_file.read_text())
        except json.JSONDecodeError as e:
            raise GateInputError(f"{label}: {results_file} is not valid JSON ({e})") from e
        try:
            self.results = ResultsFile.model_validate(raw)
        except ValidationError as e:
            raise GateInputError(
                f"{label}: {results_file} is not a results.json as 'evalsuite eval' writes it "
                f"(docs/results.md): {problems(e.errors())}"
            ) from None

    def tasks(self) -> dict[str, list[str]]:
        return {name: list(t.metrics) for name, t in self.results.tasks.items()}

    def _read(self, samples: Path) -> list[dict[str, Any]]:
        """A samples file's checked rows, read once (each metric of a task reads the same)."""
        if samples not in self._rows:
            self._rows[samples] = read_samples(samples)
        return self._rows[samples]

    def evidence(self, task: str, metric: str) -> TaskEvidence:
        record = self.results.tasks.get(task)
        if record is None:
            known = ", ".join(sorted(self.results.tasks)) or "none"
            raise GateInputError(f"{self.label}: {self.path} has no task {task!r} (has: {known})")
        samples = self.path / f"samples_{task}.jsonl"
        if not samples.is_file():
            raise GateInputError(
                f"{self.label}: {samples} is missing; the gate needs per-sample rows"
            )
        # as read (exclude_unset), so the identity is the one the store hashes
        config = record.config.model_dump(mode="json", exclude_unset=True)
        model = self.results.model.model_dump(mode="json", exclude_unset=True)
        return TaskEvidence(
            where=str(self.path),
            partial=record.partial,
            stored={name: m.value for name, m in record.metrics.items()},
            identity=task_identity(config, model),
            load_rows=lambda: self._read(samples),
        )
