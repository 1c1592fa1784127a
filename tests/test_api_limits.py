"""What a client without a token can make the API hold, through ``evalsuite api`` itself (real
uvicorn with the protocol of ``evalsuite.api.serve``, SQLite): bodies of reads are capped
small, half-sent requests are cut off, and connections above the cap are answered 503.

Asserted as an attacker would see it: the server's memory (VmRSS/VmHWM from /proc) after
concurrent 50 MB bodies, and raw sockets that the server must close on its own.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import httpx
import pytest
from fastapi.routing import APIRoute
from service_support import served
from starlette.routing import Route
from test_api_security import connect, head, memory_kb, read_response

from evalsuite.api.app import create_app
from evalsuite.api.guard import route_access
from evalsuite.api.routers.gate import GateIn
from evalsuite.settings import DEFAULT_MAX_READ_BODY_BYTES, Settings

TIMEOUT_S = 1  # the test server's EVALSUITE_API_HEADER_TIMEOUT
MAX_CONNECTIONS = 8  # its EVALSUITE_API_MAX_CONNECTIONS
ATTACK = 50 * 10**6  # each of the concurrent bodies
# the stated bound (docs/api.md, "Auth and limits"): refused read bodies grow the server by
# well under this, whatever they add up to
GROWTH_BOUND_KB = 100 * 1024
GATE = {"candidate": "no-such-run", "baseline": "another"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from served(
        "sqlite",
        tmp_path_factory.mktemp("limits"),
        cli=True,
        EVALSUITE_API_HEADER_TIMEOUT=str(TIMEOUT_S),
        EVALSUITE_API_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )


def closed_by_server(sock: socket.socket, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it does not
    close within ``within_s``."""
    sock.settimeout(within_s)
    received = b""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server held the connection open for {within_s} s: {received!r}")


def largest_gate_body() -> bytes:
    """The largest request body the gate's schema lets through, as a client sends it: 100
    checks with names of 512 characters, all non-ASCII (``\\uXXXX`` each, json.dumps's
    default), candidate and baseline as long."""
    checks_max = GateIn.model_fields["checks"].metadata[0].max_length
    name = "é" * 512
    body = {
        "candidate": name,
        "baseline": name,
        "checks": [{"task": name, "metric": name} for _ in range(checks_max)],
        "max_drop": 1.0,
        "alpha": 0.05,
        "n_boot": 100_000,
        "seed": 2**63 - 1,
    }
    GateIn.model_validate(body)  # really the largest *valid* one
    return json.dumps(body).encode()


def test_the_read_cap_fits_the_largest_gate_request_and_the_gate_is_served(server):
    body = largest_gate_body()
    print(f"largest gate body: {len(body)} bytes; cap {DEFAULT_MAX_READ_BODY_BYTES}")
    assert len(body) <= Settings().max_read_body_bytes == DEFAULT_MAX_READ_BODY_BYTES
    answer = httpx.post(
        f"{server.url}/v1/gate",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 404, answer.text  # no such run: the gate read the request


def test_a_gate_body_over_the_read_cap_is_a_413_naming_the_setting(server):
    over = b" " * DEFAULT_MAX_READ_BODY_BYTES + json.dumps(GATE).encode()
    answer = httpx.post(f"{server.url}/v1/gate", content=over, timeout=30)
    assert answer.status_code == 413
    detail = answer.json()["detail"]
    assert "EVALSUITE_API_MAX_READ_BODY_BYTES" in detail
    assert f"{DEFAULT_MAX_READ_BODY_BYTES} bytes" in detail


def _anonymous_routes(tmp_path) -> list[tuple[str, str]]:
    """(method, path) of every route that answers without a token, path parameters filled."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}"))
    found = [
        (method, re.sub(r"\{[^}]+\}", "1", route.path))
        for route in app.routes
        if isinstance(route, APIRoute | Route) and route_access(route) in ("read", "open")
        for method in sorted(route.methods or ())
        if method != "HEAD"  # its answer has a Content-Length but no body to read back
    ]
    return [*found, ("GET", "/no/such/route")]


def test_every_route_open_without_a_token_refuses_a_body_over_the_read_cap(server, tmp_path):
    routes = _anonymous_routes(tmp_path)
    assert ("POST", "/v1/gate") in routes and len(routes) >= 10
    for method, path in routes:
        with connect(server) as sock:
            over = DEFAULT_MAX_READ_BODY_BYTES + 1
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {over}\r\n\r\n".encode()
            )
            status, _, body = read_response(sock)  # answered with no body byte sent
        assert status == 413, (method, path, body)
        assert "EVALSUITE_API_MAX_READ_BODY_BYTES" in json.loads(body)["detail"]


def _flood(server, chunked: bool, statuses: list[int]) -> None:
    """One 50 MB body to the gate, no token; records the answer's status."""
    with connect(server) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {ATTACK}"
        sock.sendall(head("/v1/gate", framing))
        block = b"[" * 2**20
        try:
            for _ in range(ATTACK // len(block)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        except OSError:  # refused and closed: it read no further
            pass
        try:
            statuses.append(read_response(sock)[0])
        except (OSError, AssertionError):
            statuses.append(-1)  # closed without an answer: still refused


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_concurrent_50mb_gate_bodies_are_refused_within_the_memory_bound(server, chunked):
    pid = server.process.pid
    _flood(server, chunked, [])  # warm up the path, so what follows allocates nothing new
    before = memory_kb(pid)
    statuses: list[int] = []
    threads = [threading.Thread(target=_flood, args=(server, chunked, statuses)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = memory_kb(pid)
    growth = {name: after[name] - before[name] for name in after}
    print(f"server memory growth over 4 x 50 MB refused gate bodies ({chunked=}): {growth} kB")
    assert len(statuses) == 4 and set(statuses) <= {413, 408, -1}, statuses
    assert 413 in statuses, statuses  # the cap answered, not only dropped connections
    assert growth["VmHWM"] < GROWTH_BOUND_KB, (before, after)
    assert growth["VmRSS"] < GROWTH_BOUND_KB, (before, after)
    assert httpx.get(f"{server.url}/v1/health").status_code == 200


def test_a_half_sent_request_head_is_answered_408_and_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        received = closed_by_server(sock, 3 * TIMEOUT_S + 2)
    assert received.startswith(b"HTTP/1.1 408"), received
    assert b"EVALSUITE_API_HEADER_TIMEOUT" in received


def test_a_silent_connection_is_closed(server):
    with connect(server) as sock:
        assert closed_by_server(sock, 3 * TIMEOUT_S + 2) == b""


def test_a_trickled_head_is_closed_although_bytes_keep_coming(server):
    """One byte at a time, each well inside the timeout: the head as a whole is late."""
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\n")
        start = time.monotonic()
        try:
            while time.monotonic() - start < 3 * TIMEOUT_S + 2:
                sock.sendall(b"X-A: b\r\n")
                time.sleep(TIMEOUT_S / 5)
        except OSError:  # closed: as it must be
            pass
        received = closed_by_server(sock, TIMEOUT_S + 2)
    assert b"408" in received or received == b""  # a reset may swallow the 408


def test_a_trickled_read_body_is_a_408(server):
    with connect(server) as sock:
        sock.sendall(head("/v1/gate", "Content-Length: 1000") + b"{")
        status, _, body = read_response(sock)  # without the rest of the body
    assert status == 408, body
    assert "EVALSUITE_API_HEADER_TIMEOUT" in json.loads(body)["detail"]


def test_a_kept_alive_connection_must_send_its_next_head_in_time(server):
    """After an answer, half of a second request on the same connection is cut off too."""
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: ")
        received = closed_by_server(sock, 3 * TIMEOUT_S + 2)
    assert received.startswith(b"HTTP/1.1 408"), received


def test_connections_above_the_cap_get_503_until_the_idle_ones_are_cut_off(server):
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in idle:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\n")  # and never the rest
        time.sleep(0.2)  # accepted by the server
        busy = httpx.get(f"{server.url}/v1/health", timeout=10)
        assert busy.status_code == 503, busy.text
        assert "EVALSUITE_API_MAX_CONNECTIONS" in busy.json()["detail"]
        for sock in idle:
            closed_by_server(sock, 3 * TIMEOUT_S + 2)
    finally:
        for sock in idle:
            sock.close()
    assert httpx.get(f"{server.url}/v1/health", timeout=10).status_code == 200


def test_up_to_the_cap_connections_are_served(server):
    """The cap counts connections, the new one included: MAX_CONNECTIONS - 1 idle + 1 = 200."""
    idle = [connect(server) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        time.sleep(0.2)
        assert httpx.get(f"{server.url}/v1/health", timeout=10).status_code == 200
    finally:
        for sock in idle:
            sock.close()
