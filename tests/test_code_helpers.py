"""Shared helpers for the HumanEval+ scoring tests (imported by the test_code_* modules).

Real data is read from ``../shared/data`` when it is there; tests that need it skip with
the reason otherwise. The toy dataset is written by the tests themselves, so the sandbox
and CLI tests run anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HUMANEVAL_PLUS = SHARED_DATA / "humaneval_plus" / "HumanEvalPlus.jsonl.gz"

ADD_PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
HALF_PROMPT = 'def half(x):\n    """Return x / 2."""\n'
TOY_ROWS = [
    {
        "task_id": "Toy/0",
        "prompt": ADD_PROMPT,
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "base_input": [[1, 2], [3, 4]],
        "plus_input": [[5, 6], [10**20, 1], [-1, 1]],
        "atol": 0,
        "contract": "",
        "test": "",
    },
    {
        "task_id": "Toy/1",
        "prompt": HALF_PROMPT,
        "entry_point": "half",
        "canonical_solution": "    return x / 2\n",
        "base_input": [[1], [3]],
        "plus_input": [[0.1], [1e9 + 1]],
        "atol": 0,
        "contract": "",
        "test": "",
    },
]


def requires_data() -> Path:
    """The HumanEval+ release file, or skip saying where it was looked for."""
    if not HUMANEVAL_PLUS.is_file():
        pytest.skip(f"HumanEval+ data not found at {HUMANEVAL_PLUS} (shared/data is absent)")
    return HUMANEVAL_PLUS


def write_toy_dataset(folder: Path) -> Path:
    path = folder / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TOY_ROWS))
    return path


def write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy-data"))
