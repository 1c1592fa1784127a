"""Reading samples and datasets: both formats, and one clear error per kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_code_helpers import ADD_PROMPT, write_samples, write_toy_dataset

from evalsuite.scoring.code.data import load_dataset, resolve_dataset
from evalsuite.scoring.code.samples import read_samples
from evalsuite.scoring.errors import ScoringError


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


def test_evalplus_jsonl_solution_and_completion(toy_dataset: Path, tmp_path: Path) -> None:
    data = load_dataset(toy_dataset)
    rows = [
        {"task_id": "Toy/0", "solution": "def add(a, b):\n    return a + b\n"},
        {"task_id": "Toy/1", "completion": "\n    return x / 2\nprint(half(2))\n"},
        {"task_id": "Toy/0", "completion": "    return b + a\n"},
    ]
    path = write_samples(tmp_path / "s.jsonl", rows)
    samples = read_samples(path, data)
    assert [(s.task_id, s.index) for s in samples] == [("Toy/0", 0), ("Toy/1", 0), ("Toy/0", 1)]
    assert samples[0].program == rows[0]["solution"]
    assert samples[1].program == 'def half(x):\n    """Return x / 2."""\n    return x / 2'
    # EvalPlus' own convention appends the completion to the prompt unchanged
    evalplus_style = read_samples(path, data, completion_style="evalplus")
    assert evalplus_style[2].program == ADD_PROMPT + "    return b + a\n"


def test_bigcode_json_follows_dataset_order(toy_dataset: Path, tmp_path: Path) -> None:
    data = load_dataset(toy_dataset)
    path = tmp_path / "generations.json"
    path.write_text(json.dumps([["p0a", "p0b"], ["p1a"]]))
    samples = read_samples(path, data)
    assert [(s.task_id, s.index, s.program) for s in samples] == [
        ("Toy/0", 0, "p0a"),
        ("Toy/0", 1, "p0b"),
        ("Toy/1", 0, "p1a"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task_id": "Toy/0", "solution": "x"}\n{"task_id": ', r"s\.bad:2: not valid JSON"),
        (
            '{"task_id": "HumanEval/0", "solution": "x"}\n',
            r"s\.bad:1: task_id 'HumanEval/0' is not",
        ),
        ('{"task_id": "Toy/0"}\n', r"s\.bad:1: needs a string 'solution'"),
        ('["x"]\n', r"list of lists"),
        ('[["a"], ["b"], ["c"]]', r"3 lists of generations but the dataset has only 2"),
        ('[["a", 3]]', r"s\.bad\[0\]\[1\]: expected a program"),
        ("\n\n", r"empty"),
        ("[1, ", r"s\.bad:1: not valid JSON"),
    ],
)
def test_bad_samples(toy_dataset: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.bad"
    path.write_text(content)
    with pytest.raises(ScoringError, match=message):
        read_samples(path, load_dataset(toy_dataset))


def test_missing_files(tmp_path: Path, toy_dataset: Path) -> None:
    with pytest.raises(ScoringError, match="cannot read the samples"):
        read_samples(tmp_path / "nope.jsonl", load_dataset(toy_dataset))
    with pytest.raises(ScoringError, match="cannot read the dataset"):
        load_dataset(tmp_path / "nope.jsonl.gz")


def test_bad_dataset(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"task_id": "T/0", "prompt": "p"}\n')
    with pytest.raises(ScoringError, match=r"d\.jsonl:1: missing entry_point"):
        load_dataset(path)


def test_no_dataset_says_how_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ScoringError, match="pass --dataset"):
        resolve_dataset(None)
    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", "/some/file.jsonl")
    assert str(resolve_dataset(None)) == "/some/file.jsonl"
