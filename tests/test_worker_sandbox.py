"""A queue worker whose jail cannot start refuses HumanEval+ jobs unless its operator allowed
basic mode, and every HumanEval+ score the service stores says which sandbox produced it.

Real service (uvicorn, SQLite), real ``evalsuite worker`` processes on the tiny model. The jail
is taken from a worker as Docker's default grants take it: CAP_SYS_ADMIN dropped from the
capability bounding set (``setpriv``), so bwrap is there but cannot make its namespaces.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import TOKEN, served
from test_sandbox_policy import NO_SYS_ADMIN, needs_root_setpriv

from evalsuite.client import ApiClient
from evalsuite.demo.data import write_demo_data
from evalsuite.scoring.code.isolation import ALLOW_BASIC_FLAG
from evalsuite.testing.checkpoints import write_example_runs
from evalsuite.worker.submit import RunFields, submit_checkpoint

pytestmark = [pytest.mark.slow, needs_root_setpriv]


@pytest.fixture
def service(tmp_path):
    yield from served("sqlite", tmp_path, EVALSUITE_MAX_ATTEMPTS="1")


def _work(server, tmp_path: Path, data_dir: Path, jail: bool, **env: str) -> str:
    """One ``evalsuite worker --once``; its output."""
    argv = [
        sys.executable, "-m", "evalsuite.cli", "worker", "--api", server.url, "--token", TOKEN,
        "--engine", "hf", "--data-dir", str(data_dir), "--work-dir", str(tmp_path / "jobs"),
        "--poll", "0.5", "--once",
    ]  # fmt: skip
    done = subprocess.run(
        argv if jail else [*NO_SYS_ADMIN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


def _sandboxes(client: ApiClient, checkpoint_id: int) -> set:
    scores = client.get_checkpoint(checkpoint_id)["scores"]
    assert {s["task"] for s in scores} == {"humaneval_plus"}
    return {s["sandbox"] for s in scores}


def test_a_worker_without_the_jail_refuses_humaneval_unless_allowed(service, tiny_base, tmp_path):
    data_dir = write_demo_data(tmp_path / "data", forgetting_docs=1)
    ckpts = write_example_runs(tmp_path / "runs", tiny_base, methods=("lora",), epochs=2)["lora"]
    client = ApiClient(service.url, token=TOKEN)
    new_run = RunFields(
        method="lora", domain="code", base_model="tiny", base_model_path=str(tiny_base)
    )
    options = {"n_samples": 1, "max_new_tokens": 8}
    registered = [
        submit_checkpoint(client, "lora-r8", c, suites=["code"], options=options, new_run=new_run)
        for c in ckpts
    ]
    jobs = [r["jobs"][0]["id"] for r in registered]
    checkpoints = [r["checkpoint"]["id"] for r in registered]

    # no jail, not allowed: said at start, and each job fails with the reason and the fixes
    out = _work(service, tmp_path, data_dir, jail=False)
    assert "warning: HumanEval+ jobs will fail here" in out
    for job_id in jobs:
        job = client.get_job(job_id)
        assert job["status"] == "FAILED", job
        assert "refusing to score humaneval_plus in the sandbox's basic mode" in job["error"]
        assert "Creating new namespace failed" in job["error"]  # why the jail could not start
        assert ALLOW_BASIC_FLAG in job["error"] and "docker-compose.yml" in job["error"]
        assert client.get_checkpoint(checkpoints[0])["scores"] == []

    # the operator allows basic mode (compose: EVALSUITE_ALLOW_BASIC_SANDBOX=1): scored, and
    # the stored scores say it was basic mode
    client.retry(jobs[0])
    out = _work(service, tmp_path, data_dir, jail=False, EVALSUITE_ALLOW_BASIC_SANDBOX="1")
    assert "basic mode (allowed)" in out
    assert client.get_job(jobs[0])["status"] == "FINISHED"
    assert _sandboxes(client, checkpoints[0]) == {"basic"}

    # a worker with the jail: the scores say namespaces
    client.retry(jobs[1])
    out = _work(service, tmp_path, data_dir, jail=True)
    assert "sandbox: HumanEval+ programs run in the bubblewrap jail" in out
    assert client.get_job(jobs[1])["status"] == "FINISHED"
    assert _sandboxes(client, checkpoints[1]) == {"namespaces"}
