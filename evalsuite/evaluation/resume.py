"""The resume cache: each finished request, appended to a JSONL file the moment it ends.

A run killed at any point (even kill -9) keeps every line written; the next run reads them
back and asks the engine only for what is missing. Lines are keyed by everything that
determines an answer (checkpoint content, materialisation, engine, prompt, sampling), so a
changed input never reuses a stale answer. A torn last line is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def request_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResumeCache:
    def __init__(self, path: Path):
        self.path = path
        self._records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a crash cut short
                self._records[record["key"]] = record
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a")  # noqa: SIM115 - appended to for the whole task

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def add(self, key: str, record: dict[str, Any]) -> None:
        record = {"key": key, **record}
        self._records[key] = record
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()  # in the page cache: survives the process being killed

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResumeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
