"""``evalsuite score math``: JSON shape, mode flags, and bad input (file:line, exit code 2).

The score app is tested on its own (``score_app``); the main CLI mounts it as ``score``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalsuite.scoring.cli import score_app

ROWS = [
    {"prediction": "Let's see.\nThe answer is: \\frac12.\nDone.", "gold": "0.5", "level": 2,
     "subject": "Algebra"},
    {"id": "tuple", "prediction": "The answer is: (1,2)", "gold": "(1,2)",
     "type": "Precalculus", "level": "Level 5"},
    {"prediction": "so the result is \\boxed{10{,}000}", "gold": "10000", "subject": "Algebra"},
    {"prediction": "The answer is: 7", "solution": "Hence $x=\\boxed{\\frac{14}{2}}$."},
    {"prediction": "I give up.", "gold": "3"},
]  # fmt: skip


def _write(tmp_path: Path, rows: list, name: str = "preds.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _run(*args: str):
    return CliRunner().invoke(score_app, ["math", *args])


def test_json_both_modes(tmp_path):
    result = _run("--predictions", str(_write(tmp_path, ROWS)), "--json", "--workers", "2")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"acc", "acc_robust", "items"} <= set(out)
    assert [set(item) for item in out["items"]] == [
        {"id", "extracted", "paper", "robust", "status"}
    ] * len(ROWS)
    items = out["items"]
    assert [i["id"] for i in items] == [1, "tuple", 3, 4, 5]  # default id: the line number
    assert [i["paper"] for i in items] == [True, False, False, True, False]
    assert [i["robust"] for i in items] == [True, True, True, True, False]
    assert [i["status"] for i in items] == ["ok", "ok", "invalid", "ok", "invalid"]
    assert [i["extracted"] for i in items] == ["\\frac12", "(1,2)", "10{,}000", "7", None]
    assert out["acc"] == pytest.approx(2 / 5) and out["acc_robust"] == pytest.approx(4 / 5)
    assert out["n"] == 5
    assert out["by_subject"]["Algebra"] == {"n": 2, "acc": 0.5, "acc_robust": 1.0}
    assert out["by_level"]["Level 2"]["n"] == 1 and out["by_level"]["Level 5"]["n"] == 1


@pytest.mark.parametrize(
    ("mode", "paper_null", "robust_null"), [("paper", False, True), ("robust", True, False)]
)
def test_mode_flags(tmp_path, mode, paper_null, robust_null):
    path = _write(tmp_path, ROWS)
    result = _run("--predictions", str(path), "--mode", mode, "--json", "--timeout", "3")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["acc"] is None) == paper_null and (out["acc_robust"] is None) == robust_null
    assert all((i["paper"] is None) == paper_null for i in out["items"])
    assert all((i["robust"] is None) == robust_null for i in out["items"])
    if mode == "robust":  # robust extraction takes the box when the marker is missing
        assert out["items"][2]["extracted"] == "10{,}000" and out["items"][2]["status"] == "ok"
    else:
        assert out["items"][2]["extracted"] is None and out["items"][2]["status"] == "invalid"


def test_table_output(tmp_path):
    result = _run("--predictions", str(_write(tmp_path, ROWS)), "--mode", "both")
    assert result.exit_code == 0, result.output
    assert "acc (paper)" in result.stdout and "40.00" in result.stdout
    assert "80.00" in result.stdout and "by subject" in result.stdout


@pytest.mark.parametrize(
    ("lines", "line_number", "words"),
    [
        (['{"prediction": "The answer is: 1", "gold": "1"}', "{not json"], 2, "not valid JSON"),
        (['{"prediction": "The answer is: 1"}'], 1, "neither 'gold'"),
        (['{"prediction": "x", "solution": "no box here"}'], 1, "no complete \\boxed"),
        (['{"gold": "1"}'], 1, "no 'prediction'"),
        (["", '{"prediction": 3, "gold": "1"}'], 2, "not a string"),
        (["[1, 2]"], 1, "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, lines, line_number, words):
    path = _write(tmp_path, lines)
    result = _run("--predictions", str(path), "--json")
    assert result.exit_code == 2
    assert f"{path}:{line_number}:" in result.stderr and words in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--predictions", "/nonexistent/preds.jsonl"], "/nonexistent/preds.jsonl: no such file"),
        (["--mode", "fast"], "--mode 'fast'"),
        (["--workers", "0"], "--workers 0"),
        (["--timeout", "0"], "--timeout 0"),
    ],
)
def test_bad_arguments(tmp_path, args, words):
    path = _write(tmp_path, ROWS[:1])
    full = args if "--predictions" in args else ["--predictions", str(path), *args]
    result = _run(*full)
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert "Traceback" not in result.output


def test_empty_file(tmp_path):
    result = _run("--predictions", str(_write(tmp_path, [""])))
    assert result.exit_code == 2 and "no predictions" in result.stderr


def test_module_entry_point(tmp_path):
    """``python -m evalsuite.scoring.cli math ...`` (no "score" level), as a real process."""
    path = _write(tmp_path, ROWS[:2])
    run = subprocess.run(
        [sys.executable, "-m", "evalsuite.scoring.cli", "math", "--predictions", str(path),
         "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [i["paper"] for i in json.loads(run.stdout)["items"]] == [True, False]
    bad = _write(tmp_path, ["{oops"], "bad.jsonl")
    run = subprocess.run(
        [sys.executable, "-m", "evalsuite.scoring.cli", "math", "--predictions", str(bad)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 2 and f"{bad}:1: not valid JSON" in run.stderr
    assert "Traceback" not in run.stderr
