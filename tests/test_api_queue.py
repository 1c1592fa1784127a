"""The queue under load and failure, through real HTTP on both backends: 8 concurrent workers
draining 500 jobs, leases that run out, a killed API process, failures and retries."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from service_support import (
    BACKENDS,
    TOKEN,
    Server,
    make_database,
    results_with,
    sample_row,
    served,
)
from sqlalchemy import func, select

from evalsuite.client import ApiClient, ApiError
from evalsuite.store import Database, migrate
from evalsuite.store.models import Job, Sample, Score


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    yield from served(request.param, tmp_path, EVALSUITE_MAX_ATTEMPTS="2")


def _register(api: ApiClient, run: str, count: int) -> list[int]:
    api.create_run(name=run, method="lora", r=8, domain="code", base_model="A")
    return [
        api.register_checkpoint(run, epoch=i, uri=f"/c/{i}", sha256=f"{run}-{i}", suites=["code"])[
            "jobs"
        ][0]["id"]
        for i in range(1, count + 1)
    ]


def _results(job_id: int) -> dict:
    return results_with({"humaneval_plus": {"pass@1": job_id / 1000, "pass@10": 0.5}})


def test_eight_workers_drain_500_jobs_each_once(server):
    ids = _register(ApiClient(server.url, token=TOKEN), "load", 500)
    claimed: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            with ApiClient(server.url, token=TOKEN, timeout=60) as api:
                while job := api.claim(f"w{slot}", lease_s=300):
                    claimed[slot].append(job["id"])
                    sample = [sample_row("d")]
                    api.complete(
                        job["id"], f"w{slot}", _results(job["id"]), {"humaneval_plus": sample}
                    )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    every = [job for jobs in claimed for job in jobs]
    assert sorted(every) == sorted(ids)  # each claimed exactly once
    assert sum(1 for jobs in claimed if jobs) > 1  # really concurrent
    db = Database(server.database_url)
    try:
        with db.reading() as s:
            statuses = Counter(s.scalars(select(Job.status)))
            assert statuses == {"FINISHED": 500}
            assert set(s.scalars(select(Job.attempts))) == {1}
            per_job = Counter(s.scalars(select(Score.job_id)))
            assert len(per_job) == 500 and set(per_job.values()) == {2}
            assert s.scalar(select(func.count()).select_from(Sample)) == 500
            # the scores really are each job's own
            value = s.scalar(
                select(Score.value).where(Score.job_id == ids[7], Score.metric == "pass@1")
            )
            assert value == ids[7] / 1000
    finally:
        db.dispose()


def test_expired_lease_is_claimed_again_and_the_stale_worker_is_refused(server):
    api = ApiClient(server.url, token=TOKEN)
    (job_id,) = _register(api, "lease", 1)
    first = api.claim("stale", lease_s=0.5)
    assert first["id"] == job_id and first["attempts"] == 1
    assert api.claim("fresh", lease_s=60) is None  # the lease still holds
    second = None
    for _ in range(600):  # polled: claimable once the 0.5 s lease has run out, not before
        second = api.claim("fresh", lease_s=60)
        if second is not None:
            break
        time.sleep(0.05)
    assert second is not None, "the expired lease was never released"
    assert second["id"] == job_id and second["worker_id"] == "fresh" and second["attempts"] == 2
    with pytest.raises(ApiError) as exc:
        api.heartbeat(job_id, "stale", 60)
    assert exc.value.status == 409
    with pytest.raises(ApiError) as exc:
        api.complete(job_id, "stale", _results(job_id))
    assert exc.value.status == 409  # another worker holds it now
    assert api.heartbeat(job_id, "fresh", 60)["worker_id"] == "fresh"
    assert api.complete(job_id, "fresh", _results(job_id))["status"] == "FINISHED"
    # the stale worker's late report after the job finished: 200, nothing stored twice
    assert api.complete(job_id, "stale", _results(job_id))["status"] == "FINISHED"
    with pytest.raises(ApiError) as exc:
        api.heartbeat(job_id, "stale", 60)
    assert exc.value.status == 409
    scores = api.get_checkpoint(api.get_job(job_id)["checkpoint_id"])["scores"]
    assert len(scores) == 2


def test_failures_retry_until_max_attempts_then_retry_endpoint(server):
    api = ApiClient(server.url, token=TOKEN)
    (job_id,) = _register(api, "flaky", 1)
    api.claim("w", 60)
    once = api.fail(job_id, "w", "CUDA out of memory")
    assert (once["status"], once["attempts"], once["error"]) == ("PENDING", 1, "CUDA out of memory")
    api.claim("w", 60)
    twice = api.fail(job_id, "w", "CUDA out of memory again")
    assert (twice["status"], twice["attempts"]) == ("FAILED", 2)  # EVALSUITE_MAX_ATTEMPTS=2
    assert api.claim("w", 60) is None
    assert [j["id"] for j in api.list_jobs(status="FAILED")] == [job_id]
    with pytest.raises(ApiError) as exc:
        api.fail(job_id, "w", "again")
    assert exc.value.status == 409
    back = api.retry(job_id)
    assert (back["status"], back["attempts"]) == ("PENDING", 0)
    with pytest.raises(ApiError) as exc:
        api.retry(job_id)
    assert exc.value.status == 409
    assert api.claim("w", 60)["id"] == job_id
    assert api.health()["pending_jobs"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_killing_the_api_mid_run_loses_nothing(backend, tmp_path):
    url, drop = make_database(backend, tmp_path)
    migrate.upgrade(url)
    server = Server(url).start()
    try:
        api = ApiClient(server.url, token=TOKEN)
        ids = _register(api, "crash", 6)
        done = []
        for _ in range(3):
            job = api.claim("w", 120)
            api.complete(job["id"], "w", _results(job["id"]))
            done.append(job["id"])
        held = api.claim("w", 120)
        server.kill()
        with pytest.raises(ApiError, match="cannot reach"):
            api.health()
        server = Server(url).start()
        api = ApiClient(server.url, token=TOKEN)
        assert api.heartbeat(held["id"], "w", 120)["status"] == "RUNNING"
        api.complete(held["id"], "w", _results(held["id"]))
        while job := api.claim("w", 120):
            api.complete(job["id"], "w", _results(job["id"]))
        jobs = api.list_jobs(run="crash")
        assert sorted(j["id"] for j in jobs) == sorted(ids)
        assert {j["status"] for j in jobs} == {"FINISHED"}
        board = api.leaderboard("humaneval_plus", "pass@1")
        assert board[0]["best"] == max(ids) / 1000 and board[0]["n_epochs"] == 6
    finally:
        server.stop()
        drop()
