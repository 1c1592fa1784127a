"""Load a task's documents: a bundled file, a local copy under --data-dir, or the public dataset.

The sha256 of what was read is recorded with every result, so two runs on different data
never look comparable.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.spec import TaskSpec


@dataclass
class TaskData:
    docs: list[dict[str, Any]]
    ids: list[str]
    sha256: str  # of the full source, before --limit
    origin: str
    total: int  # documents before --limit

    @property
    def partial(self) -> bool:
        return len(self.docs) < self.total


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], str]:
    if not path.is_file():
        raise TaskError(f"data file {path} does not exist")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    name = path.name.removesuffix(".gz")
    if name.endswith(".json"):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(rows, list):
            raise TaskError(f"{path}: expected a JSON list of documents")
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TaskError(f"{path}, line {number}: not valid JSON ({e.msg})") from e
            if not isinstance(rows[-1], dict):
                raise TaskError(f"{path}, line {number}: expected a JSON object")
    return rows, hashlib.sha256(raw).hexdigest()


def _read_hf(spec: TaskSpec) -> tuple[list[dict[str, Any]], str, str]:
    hf = spec.data.hf or {}
    names = hf.get("name")
    try:
        import datasets

        # a list of configurations (MATH's subjects) is read and concatenated in that order
        parts = [
            datasets.load_dataset(hf["path"], name, split=hf.get("split", "test"))
            for name in (names if isinstance(names, list) else [names])
        ]
    except Exception as e:  # offline, unknown id, ...: all mean "not available here"
        hint = f" ({spec.data.local}; layout: docs/data.md)" if spec.data.local else ""
        raise TaskError(
            f"task {spec.name}: the public dataset {hf.get('path')!r} could not be loaded "
            f"({type(e).__name__}: {e}); pass --data-dir DIR with a local copy{hint}"
        ) from e
    rows = [dict(r) for ds in parts for r in ds]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    return rows, digest, f"hf:{hf['path']}"


def load_task_data(
    spec: TaskSpec, data_dir: Path | None = None, limit: int | None = None
) -> TaskData:
    if spec.data.file:
        path = spec.source.parent / spec.data.file
        rows, digest = _read_rows(path)
        origin = str(path)
    elif data_dir is not None and spec.data.local:
        path = Path(data_dir) / spec.data.local
        rows, digest = _read_rows(path)
        origin = str(path)
    elif spec.data.hf:
        rows, digest, origin = _read_hf(spec)
    else:
        raise TaskError(
            f"task {spec.name} reads local data only: pass --data-dir DIR containing "
            f"{spec.data.local}"
        )
    id_field = spec.data.id_field
    ids = []
    for i, row in enumerate(rows):
        if id_field and id_field not in row:
            raise TaskError(f"{origin}: document {i} has no id field {id_field!r}")
        ids.append(str(row[id_field]) if id_field else str(i))
    if len(set(ids)) != len(ids):
        raise TaskError(f"{origin}: document ids in {id_field!r} are not unique")
    if spec.data.process:
        from evalsuite.tasks.doc_processors import PROCESSORS

        if spec.data.process not in PROCESSORS:
            raise TaskError(
                f"{spec.source}: unknown data.process {spec.data.process!r}; known: "
                f"{', '.join(sorted(PROCESSORS))}"
            )
        rows = [PROCESSORS[spec.data.process](row) for row in rows]
    total = len(rows)
    if limit is not None:
        rows, ids = rows[:limit], ids[:limit]
    return TaskData(rows, ids, digest, origin, total)
