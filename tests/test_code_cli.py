"""``evalsuite score humaneval-plus``: JSON shape, summary, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from test_code_helpers import ADD_PROMPT, HALF_PROMPT, write_samples, write_toy_dataset
from typer.testing import CliRunner

from evalsuite.scoring.code.cli import register


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


def app() -> typer.Typer:
    score = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @score.callback()
    def _score() -> None:
        """score"""

    register(score)
    return score


def test_json_report(toy_dataset: Path, tmp_path: Path) -> None:
    rows = [
        {"task_id": "Toy/0", "solution": ADD_PROMPT + "    return a + b\n"},
        {"task_id": "Toy/0", "solution": ADD_PROMPT + "    return a + b if a < 100 else 0\n"},
        {"task_id": "Toy/1", "solution": HALF_PROMPT + "    return x * 0.5\n"},
        {"task_id": "Toy/1", "completion": "\n    return x // 2\n"},
    ]
    samples = write_samples(tmp_path / "s.jsonl", rows)
    args = ["humaneval-plus", "--samples", str(samples), "--dataset", str(toy_dataset), "--json"]
    result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("pass@1", "pass@10", "base", "plus", "per_task"):
        assert key in report
    assert report["per_task"] == {"Toy/0": ["pass", "fail"], "Toy/1": ["pass", "fail"]}
    # plus-correct: one of two per task; base only: both Toy/0 samples, one Toy/1 sample
    assert report["pass@1"] == 0.5 and report["pass@10"] is None
    assert report["plus"]["pass@1"] == 0.5
    assert report["base"] == {"pass@1": 0.75, "pass@10": None}
    wrong_on_plus = report["samples"][1]
    assert (wrong_on_plus["base_status"], wrong_on_plus["plus_status"]) == ("pass", "fail")
    assert wrong_on_plus["failed_split"] == "plus" and wrong_on_plus["failed_index"] == 1
    assert wrong_on_plus["failed_input"] == repr([10**20, 1])
    assert report["samples"][3]["failed_split"] == "base"  # 1 // 2 == 0, not 0.5


def test_paper_mode_and_summary(toy_dataset: Path, tmp_path: Path) -> None:
    rows = [{"task_id": "Toy/0", "solution": ADD_PROMPT + "    return a + b\n"}] * 2
    samples = write_samples(tmp_path / "s.jsonl", rows)
    args = ["humaneval-plus", "--samples", str(samples), "--dataset", str(toy_dataset)]
    result = CliRunner().invoke(app(), [*args, "--mode", "paper", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "paper" in result.stdout and "100.00" in result.stdout


def test_bad_input_is_one_line_and_exit_2(toy_dataset: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "Toy/0", "solution": "x"}\nnot json\n')
    cases = [
        ["--samples", str(bad), "--dataset", str(toy_dataset)],
        ["--samples", str(tmp_path / "missing.jsonl"), "--dataset", str(toy_dataset)],
        ["--samples", str(bad), "--dataset", str(toy_dataset), "--mode", "fast"],
        ["--samples", str(bad), "--dataset", str(toy_dataset), "--workers", "0"],
    ]
    for case in cases:
        result = CliRunner().invoke(app(), ["humaneval-plus", *case])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output


def test_repeated_programs_run_once_with_the_same_verdicts(
    toy_dataset: Path, tmp_path: Path
) -> None:
    from evalsuite.scoring.code.score import score_humaneval_plus

    good, bad = ADD_PROMPT + "    return a + b\n", ADD_PROMPT + "    return a * b\n"
    rows = [{"task_id": "Toy/0", "solution": p} for p in (good, bad, good, good, bad)]
    samples = write_samples(tmp_path / "s.jsonl", rows)
    once = score_humaneval_plus(samples, dataset=toy_dataset, workers=2)
    every = score_humaneval_plus(samples, dataset=toy_dataset, workers=2, dedup=False)
    assert (once.programs_run, every.programs_run) == (2, 5)
    expected = ["pass", "fail", "pass", "pass", "fail"]
    assert once.per_task()["Toy/0"] == every.per_task()["Toy/0"] == expected
    assert [s.index for s in once.samples] == [0, 1, 2, 3, 4]
