"""The API's guard against hostile requests, through a real uvicorn on both backends.

Asserted as properties, not just status codes: a refused request is answered before its body
is even sent (so it cannot have been read), the server's resident and peak memory do not grow
with the size of a refused body, no input is a 5xx, and nothing stored can break a later read.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from service_support import BACKENDS, TOKEN, results_with, sample_row, served

from evalsuite.api.app import create_app
from evalsuite.api.guard import route_access
from evalsuite.client import ApiClient, ApiError
from evalsuite.settings import Settings
from evalsuite.store import Database, queue
from evalsuite.store.models import Run, Sample, utcnow

MAX_BODY = 1 << 20  # the test server's EVALSUITE_API_MAX_BODY_BYTES
DEPTH = 64  # the default EVALSUITE_API_MAX_JSON_DEPTH
BIG = 60 * 10**6  # the 60 MB body
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
JSON_AUTH = {**AUTH, **JSON}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(
        request.param,
        tmp_path_factory.mktemp(request.param),
        EVALSUITE_API_MAX_BODY_BYTES=str(MAX_BODY),
    )


def nested(levels: int) -> object:
    """``{"a": {"a": ... 1}}``, ``levels`` objects deep, built without recursion."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def memory_kb(pid: int) -> dict[str, int]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in kB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: status, headers, body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def head(path: str, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(server) -> socket.socket:
    # the timeout only ends a failing test (a server waiting for a body it should refuse)
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def send_rest(sock: socket.socket, total: int, chunked: bool = False) -> None:
    """Keep sending body bytes the server has already refused; it may drop the connection."""
    block = b"x" * 2**20
    try:
        for _ in range(total // len(block)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
    except OSError:  # the server closed the connection: it read no further, as it may
        pass


@pytest.mark.parametrize("credentials", ["none", "token"])
def test_an_oversized_body_is_answered_before_it_is_sent(server, credentials):
    """No body byte is sent until the answer has arrived: the server cannot have read it.

    ``Expect: 100-continue`` (curl's default for large bodies) must not be told to go on.
    """
    auth = [f"Authorization: Bearer {TOKEN}"] if credentials == "token" else []
    with connect(server) as sock:
        sock.sendall(head("/v1/runs", f"Content-Length: {BIG}", "Expect: 100-continue", *auth))
        status, headers, body = read_response(sock)
    assert status == (413 if auth else 401), body
    detail = json.loads(body)["detail"]
    if auth:
        assert f"{MAX_BODY} bytes" in detail and "EVALSUITE_API_MAX_BODY_BYTES" in detail
    else:
        assert "Bearer" in detail and headers["www-authenticate"] == "Bearer"


def test_a_chunked_body_is_refused_once_past_the_maximum(server):
    """No Content-Length: counted as it streams, 413 without waiting for the end."""
    with connect(server) as sock:
        sock.sendall(
            head(
                "/v1/runs",
                "Transfer-Encoding: chunked",
                *[f"Authorization: {AUTH['Authorization']}"],
            )
        )
        block = b" " * 65536
        for _ in range(MAX_BODY // len(block) + 1):  # one block past the maximum, no end
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        status, _, body = read_response(sock)
    assert status == 413, body
    assert "EVALSUITE_API_MAX_BODY_BYTES" in json.loads(body)["detail"]


def test_the_maximum_itself_is_accepted(server):
    body = b" " * (MAX_BODY - 2) + b"{}"  # valid JSON of exactly the maximum: reaches the app
    at_max = httpx.post(f"{server.url}/v1/runs", content=body, headers=JSON_AUTH, timeout=60)
    assert at_max.status_code == 422 and "name" in at_max.json()["detail"]
    over = httpx.post(f"{server.url}/v1/runs", content=body + b" ", headers=JSON_AUTH, timeout=60)
    assert over.status_code == 413


def test_refused_60mb_bodies_do_not_grow_the_servers_memory(server):
    pid = server.process.pid
    # warm up every path measured below, so what follows allocates nothing new of its own
    httpx.post(f"{server.url}/v1/runs", content=b"x" * 1000)
    httpx.post(f"{server.url}/v1/runs", content=b"x" * (MAX_BODY + 1), headers=AUTH)
    before = memory_kb(pid)

    # the case: 60 MB of valid JSON (7.5 M small objects: ~1.5 GB once parsed), sent
    # whole with a Content-Length, as a plain client does, and no token
    objects = b"[" + b'{"a":1},' * (BIG // 8) + b"{}]"
    plain = httpx.post(f"{server.url}/v1/runs", content=objects, headers=JSON, timeout=120)
    assert plain.status_code == 401
    # chunked, without a token: answered first, then 60 MB sent anyway
    with connect(server) as sock:
        sock.sendall(head("/v1/jobs/1/complete", "Transfer-Encoding: chunked"))
        assert read_response(sock)[0] == 401
        send_rest(sock, BIG, chunked=True)
    # chunked, with a token: refused once past the maximum, then 60 MB more sent anyway
    with connect(server) as sock:
        sock.sendall(
            head(
                "/v1/jobs/1/complete",
                "Transfer-Encoding: chunked",
                f"Authorization: {AUTH['Authorization']}",
            )
        )
        send_rest(sock, 2 * MAX_BODY, chunked=True)
        assert read_response(sock)[0] == 413
        send_rest(sock, BIG, chunked=True)
    assert httpx.get(f"{server.url}/v1/health").status_code == 200  # served all along

    after = memory_kb(pid)
    growth = {name: after[name] - before[name] for name in after}
    print(f"server memory growth over 3 x 60 MB refused bodies: {growth} kB")
    assert growth["VmHWM"] < 4096, (before, after)  # the peak: nothing was buffered
    assert growth["VmRSS"] < 4096, (before, after)


def _run(name: str, **fields) -> dict:
    return {"name": name, "method": "lora", "r": 8, "domain": "code", "base_model": "A", **fields}


def _claimed_job(api: ApiClient, run: str, worker: str = "w") -> dict:
    """A fresh run with one checkpoint, its only job claimed by ``worker``."""
    api.create_run(**_run(run))
    reg = api.register_checkpoint(run, epoch=1, uri="/u", sha256=run, suites=["code"])
    job = api.claim(worker, 60)
    assert job is not None and job["id"] == reg["jobs"][0]["id"], "the queue was not empty"
    return job


def _results() -> dict:
    return results_with({"humaneval_plus": {"pass@1": 0.25}})


@pytest.mark.parametrize("levels", [500, 1200])
def test_deep_metadata_is_a_422_that_names_the_limit_and_nothing_is_stored(server, levels):
    # as text: past ~1000 levels Python's json cannot even write it (RecursionError)
    deep = '{"a":' * levels + "1" + "}" * levels
    body = json.dumps(_run(f"deep-{levels}", metadata="DEEP")).replace('"DEEP"', deep)
    answer = httpx.post(f"{server.url}/v1/runs", content=body, headers=JSON_AUTH)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert f"the limit is {DEPTH}" in detail and "EVALSUITE_API_MAX_JSON_DEPTH" in detail
    assert f"nested {levels + 1} levels" in detail
    assert httpx.get(f"{server.url}/v1/runs/deep-{levels}").status_code == 404
    assert httpx.get(f"{server.url}/v1/runs").status_code == 200


def test_depth_up_to_the_limit_is_accepted_and_reads_back(server):
    api = ApiClient(server.url, token=TOKEN)
    # the body object is level 1, so metadata may nest DEPTH - 1 levels
    deepest = {"s": '[[[{{{ \\" [[[[' * 100, "v": nested(DEPTH - 2)}  # brackets in strings
    run = api.create_run(**_run("at-limit", metadata=deepest))
    assert run["metadata"] == deepest
    assert api.get_run("at-limit")["metadata"] == deepest
    with pytest.raises(ApiError) as refused:
        api.create_run(**_run("over-limit", metadata={"v": nested(DEPTH - 1)}))
    assert refused.value.status == 422 and f"nested {DEPTH + 1} levels" in str(refused.value)


def test_a_deep_sample_row_is_refused_and_samples_stay_readable(server):
    api = ApiClient(server.url, token=TOKEN)
    job = _claimed_job(api, "deep-row")
    row = sample_row("HumanEval/0", details=nested(400))
    with pytest.raises(ApiError) as refused:
        api.complete(job["id"], "w", _results(), {"humaneval_plus": [row]})
    assert refused.value.status == 422 and "EVALSUITE_API_MAX_JSON_DEPTH" in str(refused.value)
    assert api.get_job(job["id"])["status"] == "RUNNING"  # nothing of it was stored
    checkpoint = job["checkpoint_id"]
    assert api.samples(checkpoint)["total"] == 0
    fine = {**row, "details": nested(DEPTH - 4)}  # under body, samples, the list, the row
    assert api.complete(job["id"], "w", _results(), {"humaneval_plus": [fine]})["status"] == (
        "FINISHED"
    )
    assert api.samples(checkpoint)["items"][0]["record"] == fine


def test_rows_stored_before_the_limit_do_not_break_reads(server):
    """A run and a samples row nested 400 deep, as an older server let in: reads still 200."""
    api = ApiClient(server.url, token=TOKEN)
    job = _claimed_job(api, "legacy")
    api.complete(job["id"], "w", _results(), {"humaneval_plus": [sample_row("d", v=1)]})
    db = Database(server.database_url)
    try:
        with db.writing() as session:
            run = session.query(Run).filter_by(name="legacy").one()
            run.meta = nested(400)
            session.add(
                Sample(checkpoint_id=job["checkpoint_id"], job_id=job["id"], task="deep",
                       doc_id="d", sample_index=0, record={"deep": nested(400)})
            )  # fmt: skip
    finally:
        db.dispose()
    page = api.samples(job["checkpoint_id"])
    assert page["total"] == 2
    assert page["items"][0]["record"] == sample_row("d", v=1)  # a scorer's own field kept
    assert "evalsuite_unreadable" in page["items"][1]["record"]
    assert "evalsuite_unreadable" in api.get_run("legacy")["metadata"]
    assert any(r["name"] == "legacy" for r in api.list_runs())


def test_completing_a_job_one_did_not_claim_is_a_409(server):
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(**_run("unclaimed"))
    reg = api.register_checkpoint("unclaimed", epoch=1, uri="/u", sha256="u", suites=["code"])
    job_id = reg["jobs"][0]["id"]
    with pytest.raises(ApiError) as refused:  # PENDING, never claimed by anyone
        api.complete(job_id, "intruder", _results())
    assert refused.value.status == 409 and "POST /v1/jobs/claim" in str(refused.value)
    assert api.get_job(job_id)["status"] == "PENDING"
    assert api.get_checkpoint(reg["checkpoint"]["id"])["scores"] == []
    assert api.claim("a", 60)["id"] == job_id
    with pytest.raises(ApiError) as refused:  # RUNNING under another worker
        api.complete(job_id, "intruder", _results())
    assert refused.value.status == 409 and "'a'" in str(refused.value)
    # the lease runs out and the job goes back to the queue; nobody has claimed it since
    db = Database(server.database_url)
    try:
        with db.writing() as session:
            assert queue.expire_leases(session, utcnow() + timedelta(hours=1)) >= 1
    finally:
        db.dispose()
    assert api.get_job(job_id)["status"] == "PENDING"
    with pytest.raises(ApiError) as refused:
        api.complete(job_id, "intruder", _results())
    assert refused.value.status == 409
    done = api.complete(job_id, "a", _results())  # the late holder's results still count
    assert (done["status"], done["worker_id"]) == ("FINISHED", "a")


def test_a_base_model_keeps_one_path_and_another_is_a_409(server):
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(**_run("p1", base_model="P", base_model_path="/models/p"))
    with pytest.raises(ApiError) as refused:
        api.create_run(**_run("p2", base_model="P", base_model_path="/elsewhere/p"))
    assert refused.value.status == 409
    assert "'/models/p'" in str(refused.value) and "'/elsewhere/p'" in str(refused.value)
    with pytest.raises(ApiError):
        api.get_run("p2")  # not stored
    with pytest.raises(ApiError) as refused:  # the same run again, with the other path
        api.create_run(**_run("p1", base_model="P", base_model_path="/elsewhere/p"))
    assert refused.value.status == 409
    assert api.create_run(**_run("p3", base_model="P"))["base_model_path"] == "/models/p"
    assert api.create_run(**_run("p4", base_model="P", base_model_path="/models/p"))
    assert {r["base_model_path"] for r in api.list_runs(base_model="P")} == {"/models/p"}


def test_gate_is_a_read(server):
    body = {"candidate": "no-such-run", "baseline": "another"}
    anonymous = httpx.post(f"{server.url}/v1/gate", json=body)
    assert anonymous.status_code == 404 and "no-such-run" in anonymous.json()["detail"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_read_auth_reads_and_the_gate_need_the_token_too(backend, tmp_path):
    for guarded in served(backend, tmp_path, EVALSUITE_API_READ_AUTH="1"):
        url = guarded.url
        gate = {"candidate": "no-such-run", "baseline": "another"}
        assert httpx.post(f"{url}/v1/gate", json=gate).status_code == 401
        assert httpx.post(f"{url}/v1/gate", json=gate, headers=AUTH).status_code == 404
        assert httpx.get(f"{url}/v1/runs").status_code == 401
        assert httpx.get(f"{url}/v1/runs", headers=AUTH).status_code == 200
        assert httpx.post(f"{url}/v1/runs", json=_run("x")).status_code == 401
        assert httpx.get(f"{url}/openapi.json").status_code == 200  # FastAPI's pages stay open


def test_which_routes_need_a_token(tmp_path):
    """Declared by each handler's session: every POST but the gate's writes, and the
    worker's calls on the queue need an unscoped token."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    access = {
        (method, route.path): route_access(route)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert len(access) >= 15
    worker = {"claim", "heartbeat", "complete", "fail", "release"}
    for (method, path), kind in access.items():
        expected = "read" if method == "GET" or path == "/v1/gate" else "write"
        if method == "POST" and path.startswith("/v1/jobs/") and path.rsplit("/", 1)[1] in worker:
            expected = "worker"
        assert kind == expected, (method, path)
    assert sum(kind == "worker" for kind in access.values()) == len(worker)
