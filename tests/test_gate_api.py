"""The gate against the real service (uvicorn, SQLite and PostgreSQL): ``evalsuite gate --api``
and ``POST /v1/gate`` give the numbers the results-directory mode gives on the same data."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_support import BACKENDS, TOKEN, served
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.client import ApiClient
from evalsuite.gate.results_dir import read_jsonl
from evalsuite.testing.results_dirs import code_task, math_task, write_results_dir

runner = CliRunner()
N_BOOT = ("--n-boot", "2000")


def _tasks(math_drop: int = 0, partial: bool = False):
    rng = np.random.default_rng(5)
    code = (rng.random((40, 10)) < 0.4).tolist()
    paper = (rng.random(300) < 0.5).tolist()
    for i in [i for i, p in enumerate(paper) if p][:math_drop]:
        paper[i] = False
    tasks = [code_task(code), math_task(paper)]
    for t in tasks:
        t.partial = partial
    return tasks


@pytest.fixture(scope="module", params=BACKENDS)
def service(request, tmp_path_factory):
    """Runs 'base' (epoch 1 better than epoch 2, the final one), 'cand' (MATH 10 points below
    base@1), 'same' (equal to base@1) and 'part' (a --limit run), all through the queue."""
    root = tmp_path_factory.mktemp(f"gate-service-{request.param}")
    yield from served(request.param, root / "db")


@pytest.fixture(scope="module")
def seeded(service, tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-dirs")
    api = ApiClient(service.url, token=TOKEN)
    dirs = {}
    plan = {
        "base": [(1, False, _tasks()), (2, True, _tasks(math_drop=15))],
        "cand": [(1, True, _tasks(math_drop=30))],
        "same": [(1, True, _tasks())],
        "part": [(1, True, _tasks(partial=True))],
    }
    for run, checkpoints in plan.items():
        api.create_run(name=run, method="lora", r=8, domain="math", base_model="tiny")
        for epoch, final, tasks in checkpoints:
            out = write_results_dir(root / f"{run}-{epoch}", tasks)
            dirs[(run, epoch)] = out
            api.register_checkpoint(
                run, epoch=epoch, step=epoch, uri=str(out), sha256=f"{run}{epoch}",
                final=final, suites=["math"],
            )  # fmt: skip
            job = api.claim("w", lease_s=60)
            results = json.loads((out / "results.json").read_text())
            samples = {t.name: read_jsonl(out / f"samples_{t.name}.jsonl") for t in tasks}
            api.complete(job["id"], "w", results, samples)
    return service.url, dirs


def _cli(*args: str):
    return runner.invoke(app, ["gate", *N_BOOT, "--json", *args])


def _checks(report: dict) -> dict:
    return {(c["task"], c["metric"]): (c["status"], c["result"]) for c in report["checks"]}


def test_api_mode_equals_results_dir_mode(seeded):
    url, dirs = seeded
    over_api = _cli("--api", url, "--candidate", "cand", "--baseline", "base@1")
    assert over_api.exit_code == 1, over_api.stdout
    local = _cli(
        "--candidate-results", str(dirs[("cand", 1)]), "--baseline-results", str(dirs[("base", 1)])
    )
    assert local.exit_code == 1
    api_report, local_report = json.loads(over_api.stdout), json.loads(local.stdout)
    assert _checks(api_report) == _checks(local_report)
    math_acc = _checks(api_report)[("math", "acc")]
    assert math_acc[0] == "regression" and math_acc[1]["diff"] == pytest.approx(-0.1)
    assert "cand@last (checkpoint" in next(
        c["candidate_where"] for c in api_report["checks"] if c["metric"] == "acc"
    )


def test_best_last_and_epoch_selectors(seeded):
    url, _ = seeded
    # base@last is epoch 2 (final, 5 points down), base@best epoch 1: the gate sees the gap
    vs_last = json.loads(_cli("--api", url, "--candidate", "cand", "--baseline", "base").stdout)
    vs_best = json.loads(
        _cli("--api", url, "--candidate", "cand", "--baseline", "base@best").stdout
    )
    assert _checks(vs_last)[("math", "acc")][1]["diff"] == pytest.approx(-0.05)
    assert _checks(vs_best)[("math", "acc")][1]["diff"] == pytest.approx(-0.10)
    where = {c["metric"]: c["baseline_where"] for c in vs_best["checks"]}
    assert "epoch 1)" in where["acc"]
    same = _cli("--api", url, "--candidate", "same@1", "--baseline", "base@best")
    assert same.exit_code == 0, same.stdout


def test_post_gate_gives_the_cli_report(seeded):
    url, _ = seeded
    body = {
        "candidate": "cand",
        "baseline": "base@1",
        "checks": [
            {"task": "math", "metric": "acc"},
            {"task": "humaneval_plus", "metric": "pass@1"},
        ],
        "n_boot": 2000,
    }
    answer = httpx.post(f"{url}/v1/gate", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["status"] == "regression" and report["exit_code"] == 1
    pairs = ("--task", "math", "--metric", "acc", "--task", "humaneval_plus", "--metric", "pass@1")
    cli = json.loads(
        _cli("--api", url, "--candidate", "cand", "--baseline", "base@1", *pairs).stdout
    )
    assert _checks(report) == _checks(cli)

    unknown = httpx.post(f"{url}/v1/gate", json={**body, "baseline": "nope"}, timeout=60)
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    bad = httpx.post(f"{url}/v1/gate", json={**body, "baseline": "base@soon"}, timeout=60)
    assert bad.status_code == 200 and bad.json()["exit_code"] == 2
    assert "best, last or an epoch" in bad.json()["reasons"][0]


def test_partial_run_and_unknown_run_cannot_decide(seeded):
    url, _ = seeded
    partial = _cli("--api", url, "--candidate", "part", "--baseline", "base@1")
    assert partial.exit_code == 2
    assert "the candidate run is partial" in partial.stdout
    missing = _cli("--api", url, "--candidate", "nope", "--baseline", "base@1")
    assert missing.exit_code == 2 and "404" in missing.stdout


def _pending_run(url: str, name: str, tmp: Path) -> tuple[ApiClient, int, Path]:
    """A run whose one checkpoint (equal to base@1) waits in the queue; its job id and dir."""
    api = ApiClient(url, token=TOKEN)
    api.create_run(name=name, method="lora", r=8, domain="math", base_model="tiny")
    out = write_results_dir(tmp / name, _tasks())
    answer = api.register_checkpoint(
        name, epoch=1, step=1, uri=str(out), sha256=f"{name}1", final=True, suites=["math"]
    )
    return api, answer["jobs"][0]["id"], out


def _claim(api: ApiClient, job_id: int) -> None:
    job = api.claim("w", lease_s=60)
    assert job is not None and job["id"] == job_id, job  # the queue holds only this one


def _complete(api: ApiClient, job_id: int, out: Path) -> None:
    _claim(api, job_id)
    results = json.loads((out / "results.json").read_text())
    samples = {t: read_jsonl(out / f"samples_{t}.jsonl") for t in results["tasks"]}
    api.complete(job_id, "w", results, samples)


def _watched_wait(monkeypatch, pending_seen: threading.Event) -> None:
    """The gate's wait, polling every 50 ms, saying when it has seen the job unfinished."""
    from evalsuite.gate import api_source
    from evalsuite.gate import cli as gate_cli

    def wait(client, run, timeout_s, poll_s=10.0):
        list_jobs = client.list_jobs

        def watched(**kwargs):
            jobs = list_jobs(**kwargs)
            if any(j["status"] in ("PENDING", "RUNNING") for j in jobs):
                pending_seen.set()
            return jobs

        client.list_jobs = watched
        return api_source.wait_for_jobs(client, run, timeout_s, poll_s=0.05)

    monkeypatch.setattr(gate_cli, "wait_for_jobs", wait)


def test_wait_returns_once_a_job_finishes_during_it(seeded, monkeypatch, tmp_path):
    url, _ = seeded
    api, job_id, out = _pending_run(url, "late", tmp_path)
    seen = threading.Event()
    _watched_wait(monkeypatch, seen)
    result: list = []
    args = ("--api", url, "--candidate", "late", "--baseline", "base@1", "--wait", "600")
    gate_thread = threading.Thread(target=lambda: result.append(_cli(*args)))
    gate_thread.start()
    try:
        assert seen.wait(120), "the gate never looked at the queue"
        assert result == []  # still waiting: the job is not done
        _complete(api, job_id, out)
    finally:
        gate_thread.join(600)
    assert result and result[0].exit_code == 0, result[0].stdout if result else "no result"
    assert {c["status"] for c in json.loads(result[0].stdout)["checks"]} == {"pass"}


def test_wait_refuses_a_failed_job(seeded, tmp_path):
    url, _ = seeded
    api, job_id, _ = _pending_run(url, "broken", tmp_path)
    while api.get_job(job_id)["status"] != "FAILED":  # every attempt fails
        _claim(api, job_id)
        api.fail(job_id, "w", "engine out of memory")
    result = _cli("--api", url, "--candidate", "broken", "--baseline", "base@1", "--wait", "60")
    assert result.exit_code == 2, result.stdout
    assert "has failed jobs" in result.stdout and "engine out of memory" in result.stdout


def test_wait_gives_up_after_its_timeout(seeded, tmp_path):
    url, _ = seeded
    api, job_id, out = _pending_run(url, "stuck", tmp_path)
    try:
        result = _cli("--api", url, "--candidate", "stuck", "--baseline", "base@1", "--wait", "1")
        assert result.exit_code == 2, result.stdout
        assert "still has 1 unfinished jobs after 1 s" in result.stdout
    finally:
        _complete(api, job_id, out)  # leaves the queue empty for the next test


def test_service_samples_are_the_files_rows(seeded, monkeypatch):
    """The rows the gate reads back equal the samples file, page after page."""
    from evalsuite.gate import api_source

    monkeypatch.setattr(api_source, "_PAGE", 150)  # 400 rows: three pages
    url, dirs = seeded
    with ApiClient(url) as api:
        source = api_source.ApiSource(api, "base@1", "baseline")
        rows = source.evidence("humaneval_plus", "pass@1").load_rows()
    assert rows == read_jsonl(Path(dirs[("base", 1)]) / "samples_humaneval_plus.jsonl")
    assert len(rows) == 400
