"""The queue worker against the real service: real uvicorn, real SQLite, the real runner on a
tiny local model (transformers engine), workers as real ``evalsuite worker`` processes.

* a submitted checkpoint is evaluated and its scores and samples in the service equal an
  evaluation of the same checkpoint by the runner called directly;
* ``kill -9`` of a worker mid-job: its evaluation process group dies with it, the lease
  expires, a second worker finishes the job, and every score is stored once;
* SIGTERM hands the current job back to the queue at once and stops its processes;
* a checkpoint whose files changed after registration, or a job with an option the worker
  does not know (refused by the API at registration; stored here as an older service let
  it in), fails with the reason, retried up to the service's limit, then FAILED;
* the run's base registered as epoch 0 (``submit --base-as-epoch-0``) is evaluated with no
  adapter, scored like the runner on the base alone, and never BEST;
* one engine serves a run's checkpoints (started once, then swapped), and a checkpoint that
  cannot be merged fails its job while the engine serves the next one;
* a hung engine (SIGSTOP) is killed after the lease's length without progress and a killed
  one is noticed: the next job gets a fresh engine, its results say why.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from service_support import TOKEN, served

from evalsuite.analysis.analyze import analyze
from evalsuite.base_epoch import BASE_URI
from evalsuite.client import ApiClient, ApiError
from evalsuite.evaluation.materialize import model_fingerprint
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.store import Database
from evalsuite.store.models import Job
from evalsuite.testing.checkpoints import EXAMPLE_TASKS, trainer_dir, write_example_runs, write_lora
from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama
from evalsuite.worker.submit import checkpoint_facts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tiny_base, tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("worker-runs")
    return write_example_runs(root, tiny_base, methods=("lora", "rasa"), epochs=2)


@pytest.fixture
def service(tmp_path):
    yield from served("sqlite", tmp_path, EVALSUITE_MAX_ATTEMPTS="2")


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _worker(server, work_dir: Path, *extra: str) -> subprocess.Popen:
    return _cli(
        "worker", "--api", server.url, "--token", TOKEN, "--engine", "hf",
        "--task-dir", str(EXAMPLE_TASKS), "--work-dir", str(work_dir), "--poll", "0.5", *extra,
    )  # fmt: skip


def _submit(server, ckpt: Path, run: str, base: Path, *extra: str) -> dict:
    proc = _cli(
        "submit", str(ckpt), "--run", run, "--api", server.url, "--token", TOKEN,
        "--method", "rasa", "--domain", "code", "--base-model", "tiny",
        "--base-model-path", str(base), "--suite", "tiny", "--json", *extra,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _direct(base: Path, adapter: Path | None, out: Path) -> tuple[dict, dict]:
    """The same checkpoint evaluated directly (no service): its results and its metrics."""
    direct = evaluate(
        EvalOptions(
            base=base, adapter=adapter, out=out, suite="tiny", engine="hf",
            task_dirs=[EXAMPLE_TASKS], progress=False,
        )
    )  # fmt: skip
    expected = {
        (task, metric): m["value"]
        for task, entry in direct["tasks"].items()
        for metric, m in entry["metrics"].items()
    }
    return direct, expected


def _scores(client: ApiClient, checkpoint_id: int) -> dict[tuple[str, str], float]:
    rows = client.get_checkpoint(checkpoint_id)["scores"]
    counts = Counter((s["task"], s["metric"]) for s in rows)
    assert max(counts.values()) == 1, f"a score stored twice: {counts}"
    return {(s["task"], s["metric"]): s["value"] for s in rows}


def test_submitted_checkpoint_is_scored_like_a_direct_evaluation(
    service, runs, tiny_base, tmp_path
):
    ckpt = runs["rasa"][1]
    answer = _submit(service, ckpt, "rasa-r8", tiny_base, "--final")
    assert [j["suite"] for j in answer["jobs"]] == ["tiny"]
    assert answer["checkpoint"]["sha256"] == checkpoint_facts(ckpt)["sha256"]
    assert answer["checkpoint"]["epoch"] == 2.0  # read from trainer_state.json
    again = _submit(service, ckpt, "rasa-r8", tiny_base, "--final")  # a no-op
    assert again["checkpoint"]["id"] == answer["checkpoint"]["id"]

    worker = _worker(service, tmp_path / "jobs", "--once")
    out, _ = worker.communicate(timeout=600)
    assert worker.returncode == 0, out
    assert "1 job(s) finished" in out

    client = ApiClient(service.url)
    job = client.get_job(answer["jobs"][0]["id"])
    assert job["status"] == "FINISHED" and job["attempts"] == 1
    direct, expected = _direct(tiny_base, ckpt, tmp_path / "direct")
    assert _scores(client, answer["checkpoint"]["id"]) == pytest.approx(expected)
    # the adapter analysis, stored with the checkpoint: the direct run's, and per module type
    # what 'evalsuite adapter analyze' computes from the checkpoint's files
    stored = client.get_checkpoint(answer["checkpoint"]["id"])["analysis"]
    assert stored == direct["adapter_analysis"] and stored["kind"] == "rasa"
    report = analyze(ckpt)["by_type"]
    assert set(stored["by_type"]) == set(report)
    for mtype, summary in stored["by_type"].items():
        assert summary == pytest.approx({k: report[mtype].get(k) for k in summary}), mtype
    for task in direct["tasks"]:
        stored = client.samples(answer["checkpoint"]["id"], task=task, limit=1000)
        lines = (tmp_path / "direct" / f"samples_{task}.jsonl").read_text().splitlines()
        assert stored["total"] == len(lines)
        assert sorted(s["correct"] for s in stored["items"]) == sorted(
            json.loads(line)["verdict"] for line in lines
        )
    board = client.leaderboard("tiny_mc", "acc")
    assert board[0]["run"] == "rasa-r8" and board[0]["best"] == pytest.approx(
        expected[("tiny_mc", "acc")]
    )


def test_the_base_as_epoch_0_is_evaluated_with_no_adapter(service, runs, tiny_base, tmp_path):
    """``submit --base-as-epoch-0``: the run's base is a checkpoint of epoch 0 that a worker
    evaluates as the base itself, scored like a direct evaluation without an adapter."""
    answer = _submit(service, runs["lora"][0], "lora-r8", tiny_base, "--base-as-epoch-0")
    base = answer["base"]["checkpoint"]
    assert (base["epoch"], base["uri"]) == (0.0, BASE_URI)
    assert base["sha256"] == model_fingerprint(tiny_base)
    again = _submit(service, runs["lora"][1], "lora-r8", tiny_base, "--base-as-epoch-0")
    assert again["base"]["checkpoint"]["id"] == base["id"]  # registered once
    worker = _worker(service, tmp_path / "jobs", "--once")
    out, _ = worker.communicate(timeout=900)
    assert worker.returncode == 0 and "3 job(s) finished" in out, out
    _, expected = _direct(tiny_base, None, tmp_path / "direct")
    client = ApiClient(service.url)
    assert _scores(client, base["id"]) == pytest.approx(expected)
    stored = client.get_checkpoint(base["id"])
    assert {s["materialization"] for s in stored["scores"]} == {"base"}
    assert stored["analysis"] is None  # no update to analyse
    rows = client.samples(base["id"], task="tiny_gen", limit=1000)
    lines = (tmp_path / "direct" / "samples_tiny_gen.jsonl").read_text().splitlines()
    assert [s["record"]["completion"] for s in rows["items"]] == [
        json.loads(line)["completion"] for line in lines
    ]
    board = client.leaderboard("tiny_mc", "acc")
    assert board[0]["run"] == "lora-r8" and board[0]["best_epoch"] > 0  # never the base


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running_job(client: ApiClient, job_id: int):
    job = client.get_job(job_id)
    return job if job["status"] == "RUNNING" else None


def _engine_started(worker_pid: int):
    """The job's process and the engine under it (at least two generations below the worker)."""
    family = _descendants(worker_pid)
    return family if any(p.ppid() != worker_pid for p in family) else None


def _all_gone(processes: list[psutil.Process], timeout: float = 30) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


def test_kill_9_mid_job_loses_nothing(tmp_path, runs, tiny_base):
    # a short lease, so the dead worker's job comes back quickly
    gen = served("sqlite", tmp_path, EVALSUITE_MAX_ATTEMPTS="3")
    server = next(gen)
    try:
        answer = _submit(server, runs["lora"][0], "lora-r8", tiny_base)
        job_id = answer["jobs"][0]["id"]
        client = ApiClient(server.url)
        first = _worker(server, tmp_path / "jobs", "--lease", "3", "--worker-id", "first")
        _wait_for(lambda: _running_job(client, job_id), 120, "the first worker's claim")
        family = _wait_for(lambda: _engine_started(first.pid), 120, "the job's engine")
        first.kill()  # SIGKILL: no handler runs, nothing is handed back
        first.communicate(timeout=30)
        assert _all_gone(family), "the job's processes outlived their worker"
        assert client.get_job(job_id)["worker_id"] == "first"  # still leased to the dead one

        second = _worker(server, tmp_path / "jobs", "--once", "--worker-id", "second")
        # the lease (3 s) must expire before the second worker can claim it
        _wait_for(lambda: client.get_job(job_id)["status"] == "FINISHED", 300, "the job's end")
        out, _ = second.communicate(timeout=120)
        job = client.get_job(job_id)
        assert job["worker_id"] == "second" and job["attempts"] == 2, (job, out)
        scores = _scores(client, answer["checkpoint"]["id"])
        assert set(scores) >= {("tiny_gen", "exact_match"), ("tiny_mc", "acc")}
    finally:
        next(gen, None)


def test_sigterm_hands_the_job_back(service, runs, tiny_base, tmp_path):
    answer = _submit(service, runs["lora"][1], "lora-r8", tiny_base)
    job_id = answer["jobs"][0]["id"]
    client = ApiClient(service.url)
    worker = _worker(service, tmp_path / "jobs", "--lease", "600")
    _wait_for(lambda: _running_job(client, job_id), 120, "the claim")
    family = _wait_for(lambda: _engine_started(worker.pid), 120, "the job's engine")
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, out
    assert _all_gone(family), "SIGTERM left the job's processes running"
    job = client.get_job(job_id)
    # back in the queue now, not after the 600 s lease; the attempt is not held against it
    assert job["status"] == "PENDING" and job["worker_id"] is None, job
    assert job["attempts"] == 0
    assert "handed back to the queue" in out


def test_changed_checkpoint_and_unknown_options_fail_with_the_reason(
    service, runs, tiny_base, tmp_path
):
    client = ApiClient(service.url, token=TOKEN)
    client.create_run(
        name="rasa-r8", method="rasa", r=8, k=1, domain="code", base_model="tiny",
        base_model_path=str(tiny_base),
    )  # fmt: skip
    changed = client.register_checkpoint(
        "rasa-r8", epoch=1, uri=str(runs["rasa"][0]), sha256="0" * 64, suites=["tiny"]
    )
    second = dict(
        epoch=2, uri=str(runs["rasa"][1]), sha256=checkpoint_facts(runs["rasa"][1])["sha256"],
        suites=["tiny"],
    )  # fmt: skip
    with pytest.raises(ApiError) as refused:  # the API checks options at registration ...
        client.register_checkpoint("rasa-r8", **second, options={"temperature_boost": 2})
    assert refused.value.status == 422 and "temperature_boost" in str(refused.value)
    unknown = client.register_checkpoint("rasa-r8", **second)
    # ... and the worker again: a job stored before that check, as an older service let in
    db = Database(service.database_url)
    try:
        with db.writing() as session:
            session.get(Job, unknown["jobs"][0]["id"]).options = {"temperature_boost": 2}
    finally:
        db.dispose()
    worker = _worker(service, tmp_path / "jobs", "--once")
    out, _ = worker.communicate(timeout=600)
    assert worker.returncode == 0, out
    bad_sha = client.get_job(changed["jobs"][0]["id"])
    assert bad_sha["status"] == "FAILED" and bad_sha["attempts"] == 2  # EVALSUITE_MAX_ATTEMPTS
    assert "registered with" in bad_sha["error"] and "0" * 64 in bad_sha["error"]
    bad_option = client.get_job(unknown["jobs"][0]["id"])
    assert bad_option["status"] == "FAILED"
    assert "temperature_boost" in bad_option["error"]
    assert "upgrade the worker" in bad_option["error"]
    assert client.get_checkpoint(changed["checkpoint"]["id"])["scores"] == []


def test_results_the_service_refuses_fail_the_job_at_once_with_its_reason(
    runs, tiny_base, tmp_path
):
    """A refusal at upload (here a 413: the body is over the service's limit) is final: the
    job fails with the service's words while the worker still holds it, not RUNNING until its
    lease ends."""
    limit = 20_000  # registration fits; the results and samples of a tiny-suite job do not
    served_ = served(
        "sqlite", tmp_path, EVALSUITE_MAX_ATTEMPTS="1", EVALSUITE_API_MAX_BODY_BYTES=str(limit)
    )
    server = next(served_)
    try:
        client = ApiClient(server.url, token=TOKEN)
        client.create_run(
            name="rasa-r8", method="rasa", r=8, k=1, domain="code", base_model="tiny",
            base_model_path=str(tiny_base),
        )  # fmt: skip
        ckpt = runs["rasa"][0]
        job_id = client.register_checkpoint(
            "rasa-r8", epoch=1, uri=str(ckpt), sha256=checkpoint_facts(ckpt)["sha256"],
            suites=["tiny"],
        )["jobs"][0]["id"]  # fmt: skip
        worker = _worker(server, tmp_path / "jobs", "--once", "--lease", "3600")
        out, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, out
        results = tmp_path / "jobs" / f"job-{job_id}" / "results.json"
        assert results.stat().st_size > 0  # the evaluation itself succeeded
        job = client.get_job(job_id)
        assert job["status"] == "FAILED", (job, out)
        assert "refused the results" in job["error"] and "413" in job["error"]
        assert "EVALSUITE_API_MAX_BODY_BYTES" in job["error"]  # the service's fix, passed on
        assert client.get_checkpoint(job["checkpoint_id"])["scores"] == []
    finally:
        served_.close()


def _lifecycle(work_dir: Path, job_id: int) -> dict:
    results = json.loads((work_dir / f"job-{job_id}" / "results.json").read_text())
    return results["model"]["engine"]["lifecycle"]


def test_one_engine_serves_a_run_and_outlives_a_bad_checkpoint(service, runs, tiny_base, tmp_path):
    wider = build_tiny_llama(tmp_path / "wider", hidden=96, intermediate=192)
    unmergeable = write_lora(trainer_dir(tmp_path / "other", 15, 1.5), wider, TARGET_MODULES)
    first = _submit(service, runs["lora"][0], "lora-r8", tiny_base)["jobs"][0]["id"]
    bad = _submit(service, unmergeable, "lora-r8", tiny_base)["jobs"][0]["id"]
    last = _submit(service, runs["lora"][1], "lora-r8", tiny_base, "--final")["jobs"][0]["id"]
    work = tmp_path / "jobs"
    worker = _worker(service, work, "--once", "--lease", "60")
    out, _ = worker.communicate(timeout=900)
    assert worker.returncode == 0, out

    client = ApiClient(service.url)
    failed = client.get_job(bad)
    assert failed["status"] == "FAILED" and failed["error"], failed
    assert str(unmergeable) in failed["error"] or "base" in failed["error"], failed["error"]
    started, swapped = _lifecycle(work, first), _lifecycle(work, last)
    assert started["how"] == "started" and started["checkpoint_index"] == 1
    # the same engine, after the failed job: it was never replaced
    assert swapped["how"] == "swapped" and swapped["engine_id"] == started["engine_id"]
    assert swapped["checkpoint_index"] == 2
    assert client.get_job(last)["status"] == "FINISHED"


def _engine_process(worker_pid: int) -> psutil.Process | None:
    """The engine: a process two generations below the worker (worker -> host -> engine)."""
    family = _descendants(worker_pid)
    engines = [p for p in family if p.ppid() != worker_pid and p.is_running()]
    return engines[0] if len(engines) == 1 else None


def _finished(client: ApiClient, job_id: int) -> bool:
    status = client.get_job(job_id)["status"]
    assert status != "FAILED", client.get_job(job_id)
    return status == "FINISHED"


def test_a_hung_or_killed_engine_is_replaced_for_the_next_job(service, runs, tiny_base, tmp_path):
    client = ApiClient(service.url)
    work = tmp_path / "jobs"
    worker = _worker(service, work, "--lease", "60")
    try:
        first = _submit(service, runs["lora"][0], "lora-r8", tiny_base)["jobs"][0]["id"]
        _wait_for(lambda: _finished(client, first), 300, "the first job")
        hung = _wait_for(lambda: _engine_process(worker.pid), 60, "the kept engine")
        hung.send_signal(signal.SIGSTOP)  # alive, but it will never answer

        second = _submit(service, runs["lora"][1], "lora-r8", tiny_base)["jobs"][0]["id"]
        _wait_for(lambda: _finished(client, second), 300, "the job after the hang")
        assert _all_gone([hung]), "the hung engine was not killed"
        replaced = _lifecycle(work, second)
        assert replaced["how"] == "started"
        assert replaced["engine_id"] != _lifecycle(work, first)["engine_id"]
        assert "made no progress for 60 s" in replaced["note"]

        killed = _wait_for(lambda: _engine_process(worker.pid), 60, "the new engine")
        killed.kill()
        third = _submit(service, runs["rasa"][0], "rasa-r8", tiny_base)["jobs"][0]["id"]
        _wait_for(lambda: _finished(client, third), 300, "the job after the kill")
        after_kill = _lifecycle(work, third)
        assert after_kill["how"] == "started" and "killed by SIGKILL" in after_kill["note"]
        assert after_kill["engine_id"] != replaced["engine_id"]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
