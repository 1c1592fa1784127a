"""Scoped tokens through a real uvicorn: a token file line with ``runs=`` writes only its
runs, never acts as a worker, and each checkpoint records which token registered it.

The attacks are a hostile token holder's: the URI and sha256 of another team's checkpoint
are public (any read shows them), so registering them under the other team's run, marking
its checkpoints final, retrying its jobs, or posing as a worker (worker ids are public too)
must each be refused with nothing written.
"""

from __future__ import annotations

import httpx
import pytest
from service_support import TOKEN, served

from evalsuite.tokens import fingerprint

ALICE = "alice-7f3e9c"  # name=alice runs=team-a-*
BOB = "bob-51d0aa"  # no name, runs=team-b-*,shared-?
WORKER = "worker-c0ffee"  # name=worker-1, unscoped
TOKEN_FILE = f"""# the CI's worker pool
{WORKER} name=worker-1
  {ALICE}   name=alice runs=team-a-*
{BOB} runs=team-b-*,shared-?
# {ALICE} runs=* (a comment: never a token, never a scope)
"""


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoped")
    token_file = root / "tokens"
    token_file.write_text(TOKEN_FILE)
    # EVALSUITE_MAX_ATTEMPTS=1: one failed attempt makes a job FAILED, so it can be retried
    for server in served(
        "sqlite", root, EVALSUITE_API_TOKEN_FILE=str(token_file), EVALSUITE_MAX_ATTEMPTS="1"
    ):
        yield server.url


def create_run(url: str, name: str, token: str) -> httpx.Response:
    body = {"name": name, "method": "lora", "r": 8, "domain": "code", "base_model": "A"}
    return httpx.post(f"{url}/v1/runs", json=body, headers=auth(token), timeout=30)


def register(url: str, run: str, sha: str, token: str, **extra: object) -> httpx.Response:
    body = {"epoch": 1, "uri": f"/ckpt/{run}/{sha}", "sha256": sha, "suites": ["code"], **extra}
    return httpx.post(
        f"{url}/v1/runs/{run}/checkpoints", json=body, headers=auth(token), timeout=30
    )


def forbidden(answer: httpx.Response, *words: str) -> None:
    assert answer.status_code == 403, answer.text
    detail = answer.json()["detail"]
    for word in words:
        assert word in detail, detail


def checkpoints(url: str, run: str) -> list[dict]:
    return httpx.get(f"{url}/v1/runs/{run}", timeout=30).json()["checkpoints"]


def claim_until(url: str, checkpoint_id: int, worker: str = "w1") -> dict:
    """Claim (as the worker) until the job of ``checkpoint_id`` is the one held; older jobs
    claimed on the way stay RUNNING (released, they would be handed out first again)."""
    for _ in range(50):
        answer = httpx.post(
            f"{url}/v1/jobs/claim", json={"worker_id": worker}, headers=auth(WORKER), timeout=30
        )
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["checkpoint_id"] == checkpoint_id:
            return job
    raise AssertionError(f"the job of checkpoint {checkpoint_id} was never handed out")


def test_a_scoped_token_creates_runs_only_inside_its_scope(url):
    assert create_run(url, "team-a-llama", ALICE).status_code == 201
    assert create_run(url, "team-a-llama", ALICE).status_code == 200  # the same again
    forbidden(create_run(url, "team-b-llama", ALICE), "'alice'", "team-a-*", "'team-b-llama'")
    forbidden(create_run(url, "TEAM-A-upper", ALICE), "team-a-*")  # globs are case-sensitive
    forbidden(create_run(url, "xteam-a-1", ALICE))  # a glob matches the whole name
    for refused in ("team-b-llama", "TEAM-A-upper", "xteam-a-1"):
        assert httpx.get(f"{url}/v1/runs/{refused}", timeout=30).status_code == 404


def test_several_patterns_and_a_token_without_a_name(url):
    assert create_run(url, "team-b-mistral", BOB).status_code == 201
    assert create_run(url, "shared-1", BOB).status_code == 201
    forbidden(create_run(url, "shared-12", BOB), fingerprint(BOB), "team-b-*,shared-?")
    forbidden(create_run(url, "team-a-bob", BOB))
    assert BOB not in create_run(url, "team-a-bob", BOB).text  # the secret is never echoed


def test_unscoped_tokens_write_any_run(url):
    assert create_run(url, "anyone-env", TOKEN).status_code == 201
    assert create_run(url, "anyone-worker", WORKER).status_code == 201


def test_registering_into_another_teams_run_is_a_403_and_stores_nothing(url):
    assert create_run(url, "team-b-victim", BOB).status_code == 201
    theirs = register(url, "team-b-victim", "b" * 64, BOB)
    assert theirs.status_code == 201, theirs.text
    # the same URI and sha256 (public) under the victim's run, and a new one
    forbidden(register(url, "team-b-victim", "b" * 64, ALICE), "'team-b-victim'", "team-a-*")
    forbidden(register(url, "team-b-victim", "e" * 64, ALICE), "team-a-*")
    # a run that does not exist yet is refused for its name, before it is looked up
    forbidden(register(url, "team-b-not-yet", "e" * 64, ALICE), "team-a-*")
    (only,) = checkpoints(url, "team-b-victim")
    assert only["sha256"] == "b" * 64 and only["registered_by"] == fingerprint(BOB)
    jobs = httpx.get(f"{url}/v1/jobs", params={"run": "team-b-victim"}, timeout=30).json()
    assert len(jobs) == 1


def test_each_checkpoint_records_the_token_that_registered_it(url):
    assert create_run(url, "team-a-owned", ALICE).status_code == 201
    mine = register(url, "team-a-owned", "a" * 64, ALICE, registered_by="someone-else")
    assert mine.status_code == 201, mine.text
    assert mine.json()["checkpoint"]["registered_by"] == "alice"  # a body cannot choose it
    # the same sha256 again, by another token: the first registration's label stays
    again = register(url, "team-a-owned", "a" * 64, TOKEN)
    assert again.status_code == 200 and again.json()["checkpoint"]["registered_by"] == "alice"
    assert register(url, "team-a-owned", "c" * 64, TOKEN).status_code == 201
    assert register(url, "team-a-owned", "d" * 64, WORKER).status_code == 201
    labels = {c["sha256"][0]: c["registered_by"] for c in checkpoints(url, "team-a-owned")}
    assert labels == {"a": "alice", "c": fingerprint(TOKEN), "d": "worker-1"}
    detail = httpx.get(f"{url}/v1/checkpoints/{mine.json()['checkpoint']['id']}", timeout=30)
    assert detail.json()["registered_by"] == "alice"
    assert TOKEN not in str(labels) and ALICE not in str(labels)


def test_marking_another_teams_checkpoint_final_is_a_403(url):
    assert create_run(url, "team-b-final", BOB).status_code == 201
    theirs = register(url, "team-b-final", "f" * 64, BOB).json()["checkpoint"]
    answer = httpx.post(
        f"{url}/v1/checkpoints/{theirs['id']}/final", headers=auth(ALICE), timeout=30
    )
    forbidden(answer, "'team-b-final'", "team-a-*")
    assert checkpoints(url, "team-b-final")[0]["final"] is False
    assert create_run(url, "team-a-final", ALICE).status_code == 201
    mine = register(url, "team-a-final", "9" * 64, ALICE).json()["checkpoint"]
    ok = httpx.post(f"{url}/v1/checkpoints/{mine['id']}/final", headers=auth(ALICE), timeout=30)
    assert ok.status_code == 200 and ok.json()["final"] is True


def test_retrying_another_teams_job_is_a_403(url):
    assert create_run(url, "team-b-retry", BOB).status_code == 201
    checkpoint = register(url, "team-b-retry", "1" * 64, BOB).json()["checkpoint"]
    job = claim_until(url, checkpoint["id"])
    failed = httpx.post(
        f"{url}/v1/jobs/{job['id']}/fail",
        json={"worker_id": "w1", "error": "out of memory"},
        headers=auth(WORKER),
        timeout=30,
    )
    assert failed.status_code == 200 and failed.json()["status"] == "FAILED"
    retry = f"{url}/v1/jobs/{job['id']}/retry"
    forbidden(httpx.post(retry, headers=auth(ALICE), timeout=30), "'team-b-retry'")
    assert httpx.get(f"{url}/v1/jobs/{job['id']}", timeout=30).json()["status"] == "FAILED"
    again = httpx.post(retry, headers=auth(BOB), timeout=30)  # its own team's job
    assert again.status_code == 200 and again.json()["status"] == "PENDING"


WORKER_CALLS = {
    "claim": ("claim", {"worker_id": "w1"}),
    "heartbeat": ("{id}/heartbeat", {"worker_id": "w1"}),
    "fail": ("{id}/fail", {"worker_id": "w1", "error": "forged"}),
    "release": ("{id}/release", {"worker_id": "w1"}),
    "complete": ("{id}/complete", {"worker_id": "w1", "results": {}, "samples": {}}),
}


@pytest.mark.parametrize("call", WORKER_CALLS)
def test_a_scoped_token_cannot_act_as_a_worker(url, call):
    """Even for a job of its own run: the worker's id is public, its token is not."""
    run = f"team-a-work-{call}"
    assert create_run(url, run, ALICE).status_code == 201
    checkpoint = register(url, run, "7" * 64, ALICE).json()["checkpoint"]
    job = claim_until(url, checkpoint["id"])
    path, body = WORKER_CALLS[call]
    answer = httpx.post(
        f"{url}/v1/jobs/{path.format(id=job['id'])}", json=body, headers=auth(ALICE), timeout=30
    )
    forbidden(answer, "'alice'", "unscoped", "worker")
    after = httpx.get(f"{url}/v1/jobs/{job['id']}", timeout=30).json()
    assert after["status"] == "RUNNING" and after["worker_id"] == "w1"
    assert after["attempts"] == job["attempts"]
    release = httpx.post(
        f"{url}/v1/jobs/{job['id']}/release",
        json={"worker_id": "w1"},
        headers=auth(WORKER),
        timeout=30,
    )
    assert release.status_code == 200  # the worker token may
