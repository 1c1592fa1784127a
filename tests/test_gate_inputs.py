"""Per-document values the gate rebuilds from sample rows, checked by hand."""

from __future__ import annotations

import json
from math import comb

import pytest

from evalsuite.gate.compare import CANNOT_DECIDE, GateSettings, run_check, unlike_reasons
from evalsuite.gate.evidence import GateInputError, default_checks, per_document
from evalsuite.gate.results_dir import ResultsDirSource
from evalsuite.testing.results_dirs import choice_task, code_task, math_task, write_results_dir


def _passk(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


def test_pass_at_k_per_problem_is_the_unbiased_estimate():
    passes = [[True, False, False, False], [True, True, False, True], [False] * 4]
    rows = code_task(passes).rows
    assert per_document(rows, "pass@1") == {
        "HumanEval/0": 0.25,
        "HumanEval/1": 0.75,
        "HumanEval/2": 0.0,
    }
    two = per_document(rows, "pass@2")
    assert two["HumanEval/0"] == pytest.approx(_passk(4, 1, 2))  # 1 - 3/6
    assert two["HumanEval/0"] == pytest.approx(0.5)
    assert two["HumanEval/1"] == pytest.approx(1.0)  # only one failure: any 2 include a pass
    with pytest.raises(GateInputError, match="pass@10 needs at least 10 samples"):
        per_document(rows, "pass@10")


def test_plus_and_base_pass_at_k_read_their_own_status():
    rows = code_task([[True, True]]).rows
    rows[0]["details"]["plus_status"] = "fail"
    rows[0]["verdict"] = False
    assert per_document(rows, "pass@1") == {"HumanEval/0": 0.5}
    assert per_document(rows, "plus/pass@1") == {"HumanEval/0": 0.5}
    assert per_document(rows, "base/pass@1") == {"HumanEval/0": 1.0}


def test_math_acc_is_paper_and_acc_robust_is_robust():
    rows = math_task([True, False, False], robust=[True, True, False]).rows
    ids = [r["doc_id"] for r in rows]
    assert list(per_document(rows, "acc").values()) == [1.0, 0.0, 0.0]
    assert list(per_document(rows, "acc_robust").values()) == [1.0, 1.0, 0.0]
    assert list(per_document(rows, "acc")) == ids  # document order kept


def test_lm_eval_metrics_come_from_details_not_the_verdict():
    task = choice_task("hellaswag", [True, False, False], [False, True, True], verdict="acc_norm")
    assert list(per_document(task.rows, "acc").values()) == [1.0, 0.0, 0.0]
    assert list(per_document(task.rows, "acc_norm").values()) == [0.0, 1.0, 1.0]


def test_default_checks_are_the_papers_metrics():
    tasks = {
        "humaneval_plus": ["pass@1", "pass@10", "base/pass@1"],
        "math": ["acc", "acc_robust", "acc/level=Level 1", "status/ok"],
        "winogrande": ["acc"],
        "hellaswag": ["acc", "acc_norm"],
        "tiny_mc": ["acc", "acc_norm"],
    }
    assert default_checks(tasks, {k: v for k, v in tasks.items() if k != "winogrande"}) == [
        ("hellaswag", "acc_norm"),
        ("humaneval_plus", "pass@1"),
        ("humaneval_plus", "pass@10"),
        ("math", "acc"),
        ("math", "acc_robust"),
        ("tiny_mc", "acc"),
        ("tiny_mc", "acc_norm"),
    ]


def test_samples_that_do_not_reproduce_the_stored_metric_are_refused(tmp_path):
    base = write_results_dir(tmp_path / "b", [math_task([True, False, True, True])])
    cand = write_results_dir(tmp_path / "c", [math_task([True, False, True, True])])
    lines = (cand / "samples_math.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["details"]["paper"] = True  # stored acc stays 0.75
    lines[1] = json.dumps(row)
    (cand / "samples_math.jsonl").write_text("\n".join(lines) + "\n")
    check = run_check(
        "math",
        "acc",
        ResultsDirSource(cand, "candidate"),
        ResultsDirSource(base, "baseline"),
        GateSettings(n_boot=100),
    )
    assert check.status == CANNOT_DECIDE
    assert "does not reproduce the stored value (0.750000)" in check.reason


def test_identity_names_the_field_and_both_values(tmp_path):
    t = math_task([True])
    t2 = math_task([True])
    t2.config["sampling"]["temperature"] = 0.7
    t2.config["source"] = "/elsewhere/math.yaml"  # a location: not a difference
    a = ResultsDirSource(write_results_dir(tmp_path / "a", [t]), "candidate")
    b = ResultsDirSource(write_results_dir(tmp_path / "b", [t2]), "baseline")
    reasons = unlike_reasons(a.evidence("math", "acc"), b.evidence("math", "acc"))
    assert reasons == ["config.sampling.temperature differs: candidate 0.0, baseline 0.7"]
