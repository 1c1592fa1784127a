"""A results directory (``evalsuite eval --out DIR``) as one side of the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalsuite.comparable import task_identity
from evalsuite.gate.evidence import GateInputError, TaskEvidence


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


class ResultsDirSource:
    """Reads ``results.json`` and ``samples_<task>.jsonl`` as the runner writes them."""

    def __init__(self, path: Path | str, label: str):
        self.path = Path(path)
        self.label = label
        self.name = str(self.path)
        results_file = self.path / "results.json"
        if not results_file.is_file():
            raise GateInputError(
                f"{label}: {results_file} does not exist; pass a directory written by "
                "'evalsuite eval --out DIR'"
            )
        try:
            self.results: dict[str, Any] = json.loads(results_file.read_text())
        except json.JSONDecodeError as e:
            raise GateInputError(f"{label}: {results_file} is not valid JSON ({e})") from e
        if not isinstance(self.results.get("tasks"), dict):
            raise GateInputError(f"{label}: {results_file} has no 'tasks' object")

    def tasks(self) -> dict[str, list[str]]:
        return {name: list(t.get("metrics", {})) for name, t in self.results["tasks"].items()}

    def evidence(self, task: str, metric: str) -> TaskEvidence:
        record = self.results["tasks"].get(task)
        if record is None:
            known = ", ".join(sorted(self.results["tasks"])) or "none"
            raise GateInputError(f"{self.label}: {self.path} has no task {task!r} (has: {known})")
        samples = self.path / f"samples_{task}.jsonl"
        if not samples.is_file():
            raise GateInputError(
                f"{self.label}: {samples} is missing; the gate needs per-sample rows"
            )
        model = self.results.get("model") or {}
        partial = bool(record.get("partial", self.results.get("partial", False)))
        return TaskEvidence(
            where=str(self.path),
            partial=partial,
            stored={
                name: float(m["value"])
                for name, m in record.get("metrics", {}).items()
                if isinstance(m, dict) and isinstance(m.get("value"), int | float)
            },
            identity=task_identity(record.get("config") or {}, model),
            load_rows=lambda: read_jsonl(samples),
        )
