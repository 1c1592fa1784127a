"""``evalsuite gate`` on synthetic results directories: exit codes, refusals, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.testing.results_dirs import (
    choice_task,
    code_task,
    default_model,
    math_task,
    write_results_dir,
)

runner = CliRunner()
N_BOOT = ("--n-boot", "2000")


def _tasks(seed: int = 0, math_drop: int = 0, swaps: int = 0):
    """HumanEval+ (164 x 10 samples), MATH (500) and HellaSwag (400) with fixed base verdicts;
    ``math_drop`` solved MATH problems turned wrong, ``swaps`` MATH problems traded each way."""
    rng = np.random.default_rng(seed)
    code = (rng.random((164, 10)) < 0.4).tolist()
    paper = (rng.random(500) < 0.5).tolist()
    solved = [i for i, p in enumerate(paper) if p]
    unsolved = [i for i, p in enumerate(paper) if not p]
    for i in solved[:math_drop]:
        paper[i] = False
    for i, j in zip(solved[-swaps:] if swaps else [], unsolved[:swaps], strict=True):
        paper[i], paper[j] = False, True
    acc = (rng.random(400) < 0.6).tolist()
    return [
        code_task(code),
        math_task(paper),
        choice_task("hellaswag", acc, acc, verdict="acc_norm"),
    ]


@pytest.fixture
def dirs(tmp_path):
    def make(name: str, tasks=None, **kwargs) -> Path:
        return write_results_dir(
            tmp_path / name, tasks if tasks is not None else _tasks(), **kwargs
        )

    return make


def _gate(cand: Path, base: Path, *args: str, env: dict | None = None):
    return runner.invoke(
        app,
        ["gate", "--candidate-results", str(cand), "--baseline-results", str(base), *N_BOOT, *args],
        env=env,
    )


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_known_regression_exits_1(dirs):
    base, cand = dirs("base"), dirs("cand", _tasks(math_drop=40))  # MATH: 8 points down
    result = _gate(cand, base, "--json")
    assert result.exit_code == 1, result.stdout
    report = _json(result)
    assert report["status"] == "regression" and report["exit_code"] == 1
    by_check = {(c["task"], c["metric"]): c for c in report["checks"]}
    assert set(by_check) == {
        ("humaneval_plus", "pass@1"),
        ("humaneval_plus", "pass@10"),
        ("math", "acc"),
        ("math", "acc_robust"),
        ("hellaswag", "acc_norm"),
    }
    math_acc = by_check[("math", "acc")]
    assert math_acc["status"] == "regression"
    assert math_acc["points"]["diff"] == pytest.approx(-8.0)
    assert math_acc["points"]["ci_high"] < 0
    assert math_acc["result"]["n"] == 500
    assert by_check[("humaneval_plus", "pass@1")]["status"] == "pass"
    assert by_check[("humaneval_plus", "pass@1")]["points"]["diff"] == 0.0


def test_noise_only_exits_0(dirs):
    base, cand = dirs("base"), dirs("cand", _tasks(swaps=30))  # 30 gained, 30 lost
    result = _gate(cand, base, "--json", "--max-drop", "0")
    assert result.exit_code == 0, result.stdout
    checks = _json(result)["checks"]
    math_acc = next(c for c in checks if (c["task"], c["metric"]) == ("math", "acc"))
    assert math_acc["points"]["diff"] == pytest.approx(0.0)
    assert math_acc["points"]["ci_low"] < 0 < math_acc["points"]["ci_high"]  # real noise


def test_small_significant_drop_within_max_drop_passes(dirs):
    base, cand = dirs("base"), dirs("cand", _tasks(math_drop=4))  # 0.8 points
    assert _gate(cand, base, "--max-drop", "1").exit_code == 0
    assert _gate(cand, base, "--max-drop", "0.5").exit_code == 1


@pytest.mark.parametrize(
    ("change", "field", "values"),
    [
        (
            lambda t: t.config.update(prompt_sha256="other"),
            "prompt_sha256",
            "'prompt-math', baseline 'other'",
        ),
        (
            lambda t: t.config.update(data_sha256="other"),
            "data_sha256",
            "'data-math', baseline 'other'",
        ),
        (
            lambda t: t.config["sampling"].update(max_tokens=512),
            "config.sampling.max_tokens",
            "1024, baseline 512",
        ),
        (
            lambda t: t.config["scorer_args"].update(mode="robust"),
            "config.scorer_args.mode",
            "(not set), baseline 'robust'",
        ),
    ],
)
def test_config_mismatch_exits_2_naming_the_field(dirs, change, field, values):
    tasks = _tasks()
    change(tasks[1])
    base, cand = dirs("base", tasks), dirs("cand")
    result = _gate(cand, base, "--task", "math", "--metric", "acc")
    assert result.exit_code == 2
    assert f"{field} differs: candidate {values}" in result.stdout


def test_materialisation_mismatch_exits_2(dirs):
    base = dirs("base", model=default_model(materialization="lora"))
    result = _gate(dirs("cand"), base, "--json")
    assert result.exit_code == 2
    reasons = _json(result)["reasons"]
    assert "math/acc: materialization differs: candidate 'merged', baseline 'lora'" in reasons


def test_partial_run_exits_2(dirs):
    tasks = _tasks()
    for t in tasks:
        t.partial = True
    result = _gate(dirs("cand", tasks), dirs("base"))
    assert result.exit_code == 2
    assert "the candidate run is partial (--limit)" in result.stdout


def test_different_documents_exit_2(dirs):
    tasks = _tasks()
    tasks[1].rows = tasks[1].rows[:-1]
    tasks[1].metrics = {"acc": np.mean([r["verdict"] for r in tasks[1].rows]).item()}
    result = _gate(dirs("cand", tasks), dirs("base"), "--task", "math", "--metric", "acc")
    assert result.exit_code == 2
    assert (
        "different documents: 0 only in the candidate [], 1 only in the baseline" in result.stdout
    )


def test_missing_inputs_and_bad_pairs_exit_2(dirs, tmp_path):
    base = dirs("base")
    assert "does not exist" in _gate(tmp_path / "nowhere", base).stdout
    assert _gate(tmp_path / "nowhere", base).exit_code == 2
    result = _gate(base, base, "--task", "math", "--metric", "acc", "--metric", "acc_robust")
    assert result.exit_code == 2 and "in pairs" in result.stdout
    result = _gate(base, base, "--task", "math", "--metric", "acc_nope")
    assert result.exit_code == 2 and "no metric 'acc_nope'" in result.stdout
    result = runner.invoke(
        app, ["gate", "--candidate", "run@best", "--baseline-results", str(base)]
    )
    assert result.exit_code == 2 and "give --api URL" in result.stdout


def test_task_alone_gates_its_default_metrics(dirs):
    base = dirs("base")
    report = _json(_gate(base, base, "--task", "humaneval_plus", "--json"))
    assert [(c["task"], c["metric"]) for c in report["checks"]] == [
        ("humaneval_plus", "pass@1"),
        ("humaneval_plus", "pass@10"),
    ]
    assert report["status"] == "pass"


def test_junit_and_step_summary(dirs, tmp_path):
    base, cand = dirs("base"), dirs("cand", _tasks(math_drop=40))
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    junit = tmp_path / "out" / "gate.xml"
    result = _gate(cand, base, "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "2" and suite.get("errors") == "0"
    failed = sorted(
        (c.get("classname"), c.get("name")) for c in suite if c.find("failure") is not None
    )
    assert failed == [("evalsuite.gate.math", "acc"), ("evalsuite.gate.math", "acc_robust")]
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "REGRESSION" in text and "| math | acc | 500 |" in text
    assert "| math | acc | 500 |" in result.stdout  # the same table on stdout

    _gate(base, base, "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text().count("### evalsuite gate") == 2
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "0"


def test_junit_reports_cannot_decide_as_errors(dirs, tmp_path):
    junit = tmp_path / "gate.xml"
    result = _gate(tmp_path / "nowhere", dirs("base"), "--junit", str(junit))
    assert result.exit_code == 2
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("errors") == "1"
    assert "does not exist" in suite.find("testcase/error").get("message")


def test_console_script_exit_code(dirs):
    """The installed entry point (main()), not only the Typer app."""
    base, cand = dirs("base"), dirs("cand", _tasks(math_drop=40))
    exe = str(Path(sys.executable).with_name("evalsuite"))
    args = ["gate", "--candidate-results", str(cand), "--baseline-results", str(base), *N_BOOT]
    done = subprocess.run([exe, *args, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["status"] == "regression"
