"""``evalsuite compare`` and ``GET /v1/compare`` on hand-made results with known flips.

Two results directories (and the same data stored in the real service, uvicorn on SQLite
and PostgreSQL) differ on chosen documents: the report lists exactly those, with the right
counts and values, and its intervals equal the gate's for the same pair.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from service_support import BACKENDS, TOKEN, served
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.client import ApiClient
from evalsuite.gate.results_dir import read_jsonl
from evalsuite.testing.results_dirs import choice_task, code_task, math_task, write_results_dir

runner = CliRunner()
N_BOOT = ("--n-boot", "2000")
N = 10  # samples per HumanEval+ problem
CODE_A = [3, 2, 0, 5, 1, 0, 0, 0, 4, 0, 1, 2]  # passing samples per problem
CODE_B = [3, 0, 1, 5, 0, 0, 0, 2, 4, 0, 1, 1]
MATH_LOST, MATH_GAINED = {3, 10}, {20}
MATH_A = [i % 3 == 0 or i in MATH_LOST for i in range(30)]
MATH_B = [(ok and i not in MATH_LOST) or i in MATH_GAINED for i, ok in enumerate(MATH_A)]
CHOICE_A = [True, True, False, True, False, True]
CHOICE_B = [False, True, False, True, False, True]

EXPECTED = {  # task -> (lost, gained) doc ids
    "humaneval_plus": (["HumanEval/1", "HumanEval/4"], ["HumanEval/2", "HumanEval/7"]),
    "math": (["test/algebra/3.json", "test/algebra/10.json"], ["test/algebra/20.json"]),
    "hellaswag": (["0"], []),
}


def _side(code, paper, choice, prompt: str | None = None):
    tasks = [
        code_task([[s < c for s in range(N)] for c in code]),
        math_task(paper),
        choice_task("hellaswag", choice, choice, "acc_norm"),
    ]
    if prompt:
        tasks[1].config["prompt_sha256"] = prompt
    return tasks


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return {
        "a": write_results_dir(root / "a", _side(CODE_A, MATH_A, CHOICE_A)),
        "b": write_results_dir(root / "b", _side(CODE_B, MATH_B, CHOICE_B)),
        "other": write_results_dir(root / "o", _side(CODE_B, MATH_B, CHOICE_B, prompt="other")),
    }


def _cli(*args: str):
    return runner.invoke(app, ["compare", *N_BOOT, "--json", *args])


def _flips(report: dict) -> dict:
    return {
        t["task"]: ([i["doc_id"] for i in t["lost"]], [i["doc_id"] for i in t["gained"]])
        for t in report["tasks"]
    }


def _check_known_flips(report: dict) -> None:
    assert report["reasons"] == []
    assert _flips(report) == EXPECTED
    tasks = {t["task"]: t for t in report["tasks"]}
    code = tasks["humaneval_plus"]
    assert code["flip_metric"] == "pass@1" and code["n_docs"] == len(CODE_A)
    solved = sum(a > 0 and b > 0 for a, b in zip(CODE_A, CODE_B, strict=True))
    assert code["counts"] == {"lost": 2, "gained": 2, "both_solved": solved, "both_failed": 3}
    first_lost = code["lost"][0]  # HumanEval/1: 2 of 10 samples passed, then none
    assert first_lost["a"]["pass@1"] == pytest.approx(0.2) and first_lost["b"]["pass@1"] == 0.0
    assert first_lost["a"]["pass@10"] == 1.0 and first_lost["b"]["pass@10"] == 0.0
    math = tasks["math"]
    assert math["counts"]["lost"] == 2 and math["counts"]["gained"] == 1
    assert math["lost"][0]["a"] == {"acc": 1.0, "acc_robust": 1.0}
    assert math["lost"][0]["b"] == {"acc": 0.0, "acc_robust": 0.0}
    acc = next(m for m in math["metrics"] if m["metric"] == "acc")
    assert acc["result"]["diff"] == pytest.approx((sum(MATH_B) - sum(MATH_A)) / 30)
    assert tasks["hellaswag"]["lost"][0]["a"] == {"acc_norm": 1.0}


def _gate_results(candidate: str, baseline: str, *source: str) -> dict:
    """The gate's result per (task, metric) for the same pair (b = candidate, a = baseline)."""
    out = runner.invoke(app, ["gate", *N_BOOT, "--json", *source])
    report = json.loads(out.stdout)
    return {(c["task"], c["metric"]): c["result"] for c in report["checks"]}


def _compare_results(report: dict) -> dict:
    return {(t["task"], m["metric"]): m["result"] for t in report["tasks"] for m in t["metrics"]}


def test_results_dirs_list_exactly_the_flips(dirs):
    out = _cli(str(dirs["a"]), str(dirs["b"]))
    assert out.exit_code == 0, out.stdout
    report = json.loads(out.stdout)
    _check_known_flips(report)
    gate = _gate_results(
        "b", "a", "--candidate-results", str(dirs["b"]), "--baseline-results", str(dirs["a"])
    )
    assert _compare_results(report) == gate  # the same intervals, from one implementation


def test_reversed_sides_swap_lost_and_gained(dirs):
    report = json.loads(_cli(str(dirs["b"]), str(dirs["a"])).stdout)
    assert _flips(report) == {t: (g, lost) for t, (lost, g) in EXPECTED.items()}


def test_task_filter_and_text_view(dirs):
    report = json.loads(_cli(str(dirs["a"]), str(dirs["b"]), "--task", "math").stdout)
    assert [t["task"] for t in report["tasks"]] == ["math"]
    text = runner.invoke(app, ["compare", *N_BOOT, str(dirs["a"]), str(dirs["b"])])
    assert text.exit_code == 0
    assert "lost 2, gained 1" in text.stdout and "test/algebra/10.json" in text.stdout


def test_unlike_settings_are_refused_as_the_gate_does(dirs):
    out = _cli(str(dirs["a"]), str(dirs["other"]))
    assert out.exit_code == 2
    report = json.loads(out.stdout)
    math = next(t for t in report["tasks"] if t["task"] == "math")
    assert "prompt_sha256 differs" in math["reason"] and math["lost"] == []
    other = {t["task"]: t["reason"] for t in report["tasks"] if t["task"] != "math"}
    assert other == {"humaneval_plus": None, "hellaswag": None}


def test_a_side_that_is_neither_dir_nor_reachable_ref(dirs, tmp_path):
    out = runner.invoke(
        app, ["compare", "--json", str(tmp_path / "missing"), str(dirs["b"])], env={}
    )
    assert out.exit_code == 2
    assert "--api" in json.loads(out.stdout)["reasons"][0]


@pytest.fixture(scope="module", params=BACKENDS)
def service(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(f"compare-{request.param}"))


@pytest.fixture(scope="module")
def seeded(service, dirs):
    """Run 'ra' (epoch 1 = side a) and run 'rb' (epoch 1 = side b, epoch 2 = unlike prompt)."""
    api = ApiClient(service.url, token=TOKEN)
    ids = {}
    plan = {"ra": [(1, dirs["a"])], "rb": [(1, dirs["b"]), (2, dirs["other"])]}
    for run, checkpoints in plan.items():
        api.create_run(name=run, method="lora", r=8, domain="math", base_model="tiny")
        for epoch, out in checkpoints:
            ckpt = api.register_checkpoint(
                run, epoch=epoch, step=epoch, uri=str(out), sha256=f"{run}{epoch}",
                final=epoch == len(checkpoints), suites=["math"],
            )  # fmt: skip
            ids[(run, epoch)] = ckpt["checkpoint"]["id"]
            job = api.claim("w", lease_s=60)
            results = json.loads((out / "results.json").read_text())
            samples = {
                p.name.removeprefix("samples_").removesuffix(".jsonl"): read_jsonl(p)
                for p in out.glob("samples_*.jsonl")
            }
            api.complete(job["id"], "w", results, samples)
    return service.url, ids


def test_api_lists_the_flips_and_the_gates_interval(seeded, dirs):
    url, ids = seeded
    params = {"a": str(ids[("ra", 1)]), "b": "rb@1", "n_boot": 2000}
    answer = httpx.get(f"{url}/v1/compare", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    _check_known_flips(report)
    local = json.loads(_cli(str(dirs["a"]), str(dirs["b"])).stdout)
    assert _compare_results(report) == _compare_results(local)
    gate = _gate_results("rb@1", "ra@1", "--api", url, "--candidate", "rb@1", "--baseline", "ra@1")
    assert _compare_results(report) == gate


def test_cli_over_the_api_with_checkpoint_ids(seeded):
    url, ids = seeded
    cmd = [sys.executable, "-m", "evalsuite.cli", "compare", *N_BOOT, "--json", "--api", url]
    out = subprocess.run([*cmd, str(ids[("ra", 1)]), str(ids[("rb", 1)])], capture_output=True)
    assert out.returncode == 0, out.stderr
    _check_known_flips(json.loads(out.stdout))


def test_api_refusals(seeded):
    url, _ = seeded
    # rb@last is epoch 2, made with another prompt: math refused, the others compared
    report = httpx.get(
        f"{url}/v1/compare", params={"a": "ra", "b": "rb", "n_boot": 200}, timeout=60
    ).json()
    reasons = {t["task"]: t["reason"] for t in report["tasks"]}
    assert "prompt_sha256 differs" in reasons["math"] and reasons["hellaswag"] is None
    for params in ({"a": "nope", "b": "rb"}, {"a": "999999", "b": "rb"}):
        assert httpx.get(f"{url}/v1/compare", params=params, timeout=30).status_code == 404
    bad = httpx.get(f"{url}/v1/compare", params={"a": "ra@x", "b": "rb"}, timeout=30)
    assert bad.status_code == 200 and "selector" in bad.json()["reasons"][0]
