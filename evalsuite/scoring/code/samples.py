"""Read the programs to score, from either of the two formats people have on disk.

* EvalPlus samples JSONL: one object per line with ``task_id`` and either ``solution``
  (the whole program, used as is) or ``completion`` (what the model wrote after the prompt;
  post-processed by the paper's rule, or appended to the prompt unchanged as EvalPlus does,
  see ``completion_style``). Samples of a task keep their order in the file.
* bigcode generations JSON: a list with, for each problem in dataset order, the list of
  programs generated for it (already post-processed, used as is).

Bad input raises ScoringError naming the file and line: a line that is not JSON, a
task_id the dataset does not have, more generation lists than problems, a program that is
not a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evalsuite.scoring.code.data import Dataset
from evalsuite.scoring.code.postprocess import postprocess_completion
from evalsuite.scoring.errors import ScoringError

CompletionStyle = Literal["protocol", "evalplus"]


@dataclass(frozen=True)
class Sample:
    task_id: str
    index: int  # position among this task's samples
    program: str
    where: str  # "file:line" or "file[i][j]", for messages


def read_samples(
    path: str | Path, dataset: Dataset, completion_style: CompletionStyle = "protocol"
) -> list[Sample]:
    """Samples in file order; raises ScoringError on anything that cannot be scored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScoringError(f"{path}: cannot read the samples ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ScoringError(f"{path}: not UTF-8 text ({e.reason})") from None
    stripped = text.lstrip()
    if not stripped:
        raise ScoringError(f"{path}: the file is empty; expected samples JSONL or a JSON list")
    if stripped[0] == "[":
        samples = _bigcode(path, text, dataset)
    else:
        samples = _jsonl(path, text, dataset, completion_style)
    if not samples:
        raise ScoringError(f"{path}: no samples in the file")
    return samples


def _jsonl(path: Path, text: str, dataset: Dataset, style: CompletionStyle) -> list[Sample]:
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScoringError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("task_id"), str):
            raise ScoringError(f"{where}: expected an object with a string 'task_id'")
        task_id = row["task_id"]
        problem = dataset.problems.get(task_id)
        if problem is None:
            raise ScoringError(
                f"{where}: task_id {task_id!r} is not in the dataset ({dataset.path.name}, "
                f"{len(dataset.problems)} problems, e.g. {dataset.task_ids[0]!r})"
            )
        if isinstance(row.get("solution"), str):
            program = row["solution"]
        elif isinstance(row.get("completion"), str):
            completion = row["completion"]
            if style == "protocol":
                program = postprocess_completion(problem.prompt, completion)
            else:
                program = problem.prompt + completion
        else:
            raise ScoringError(
                f"{where}: needs a string 'solution' (whole program) or 'completion'"
            )
        index = seen.get(task_id, 0)
        seen[task_id] = index + 1
        samples.append(Sample(task_id, index, program, where))
    return samples


def _bigcode(path: Path, text: str, dataset: Dataset) -> list[Sample]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScoringError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list) or not all(isinstance(g, list) for g in data):
        raise ScoringError(f"{path}: expected a JSON list of lists of programs (bigcode format)")
    task_ids = dataset.task_ids
    if len(data) > len(task_ids):
        raise ScoringError(
            f"{path}: {len(data)} lists of generations but the dataset has only "
            f"{len(task_ids)} problems: list {len(task_ids)} and later belong to no task"
        )
    samples = []
    for i, generations in enumerate(data):
        for j, program in enumerate(generations):
            where = f"{path}[{i}][{j}]"
            if not isinstance(program, str):
                raise ScoringError(
                    f"{where}: expected a program (string), got {type(program).__name__}"
                )
            samples.append(Sample(task_ids[i], j, program, where))
    return samples
