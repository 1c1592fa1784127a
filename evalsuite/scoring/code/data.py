"""HumanEval+ problems as EvalPlus releases them (``HumanEvalPlus.jsonl[.gz]``).

One row per problem: task_id, prompt, entry_point, canonical_solution, base_input (the
original HumanEval inputs), plus_input (EvalPlus' extra inputs), atol, contract. The
``test`` field is not used: the original HumanEval check in the EvalPlus release, and the
bigcode ``check()`` over all inputs is rebuilt from the inputs (see ``code_paper``).

There is no built-in default file: the public data lives on GitHub/Hugging Face and tests
run offline, so ``resolve_dataset`` accepts the path EvalPlus itself would use
(``$HUMANEVAL_OVERRIDE_PATH``, then EvalPlus' download cache) and otherwise asks for
``--dataset``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.scoring.errors import ScoringError

VERSION = "v0.1.10"
_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    base_input: list[list[Any]]
    plus_input: list[list[Any]]
    atol: float
    contract: str = ""

    @property
    def canonical_program(self) -> str:
        """What EvalPlus runs to get the expected outputs: prompt + canonical solution."""
        return self.prompt + self.canonical_solution


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    problems: dict[str, Problem]  # in file order (bigcode's generations follow it)

    @property
    def task_ids(self) -> list[str]:
        return list(self.problems)


def load_dataset(path: str | Path) -> Dataset:
    """Read and check a HumanEval+ release file; errors name the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScoringError(f"{path}: cannot read the dataset ({e.strerror or e})") from None
    try:
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode()
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise ScoringError(f"{path}: not a (gzipped) UTF-8 JSONL file ({e})") from None
    problems: dict[str, Problem] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScoringError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        missing = [f for f in _FIELDS if f not in row] if isinstance(row, dict) else _FIELDS
        if missing:
            raise ScoringError(
                f"{path}:{number}: missing {', '.join(missing)}; is this a HumanEval+ release "
                f"file (HumanEvalPlus.jsonl.gz, {VERSION})?"
            )
        if row["task_id"] in problems:
            raise ScoringError(f"{path}:{number}: task_id {row['task_id']!r} appears twice")
        problems[row["task_id"]] = Problem(
            task_id=row["task_id"],
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            canonical_solution=row["canonical_solution"],
            base_input=row["base_input"],
            plus_input=row["plus_input"],
            atol=row.get("atol", 0) or 0,
            contract=row.get("contract", ""),
        )
    if not problems:
        raise ScoringError(f"{path}: no problems in the file")
    return Dataset(path=path, sha256=hashlib.sha256(raw).hexdigest(), problems=problems)


def evalplus_cache_file() -> Path:
    """Where EvalPlus keeps the HumanEval+ release it downloaded."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalplus")) / f"HumanEvalPlus-{VERSION}.jsonl"


def resolve_dataset(path: str | Path | None) -> Path:
    """The dataset file to use: the given one, or the one EvalPlus would use."""
    if path is not None:
        return Path(path)
    override = os.environ.get("HUMANEVAL_OVERRIDE_PATH")
    if override:
        return Path(override)
    cached = evalplus_cache_file()
    if cached.is_file():
        return cached
    raise ScoringError(
        f"no HumanEval+ dataset given and none in EvalPlus' cache ({cached}); pass --dataset "
        f"FILE (the {VERSION} release, HumanEvalPlus.jsonl.gz from "
        "github.com/evalplus/humanevalplus_release, or evalplus/humanevalplus on Hugging Face)"
    )
