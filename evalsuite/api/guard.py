"""The request guard: bearer tokens, the body-size cap and the JSON depth limit, enforced
before the application reads a single byte of the body.

A FastAPI dependency runs only after FastAPI has read and parsed the whole body, so an
unauthenticated client could make the service buffer and parse any amount of JSON. This is a
plain ASGI middleware (not ``BaseHTTPMiddleware``, which wraps ``receive`` in ways that make
"not read yet" hard to guarantee), in this order:

1. the token, from the headers alone (``evalsuite.api.auth``): a refused request is answered
   401 (403: a scoped token on a worker route) and its body is never read (uvicorn discards
   it; ``Expect: 100-continue`` clients are never told to send it);
2. ``Content-Length`` above the route's cap: 413 before reading. Writes (token-checked)
   may send ``EVALSUITE_API_MAX_BODY_BYTES`` (a worker's results); reads, which answer
   anyone, only ``EVALSUITE_API_MAX_READ_BODY_BYTES`` (the gate's request);
3. the body, counted as it streams in (chunked bodies have no length): 413 as soon as it
   passes the cap, so no more than the cap is ever held. A read's body must also arrive
   within ``EVALSUITE_API_HEADER_TIMEOUT`` seconds (408), so a trickle cannot hold it open;
4. a JSON body nested deeper than ``EVALSUITE_API_MAX_JSON_DEPTH``: 422 before parsing.

Half-sent headers and the number of connections are uvicorn's to limit, before any of this
runs: ``evalsuite.api.serve``.

Which requests need a token is declared once, by the route itself: a handler that takes a
``WriteSession`` needs one always, a ``WorkerSession`` an unscoped one, a ``ReadSession``
only with ``EVALSUITE_API_READ_AUTH=1``
(``POST /v1/gate`` computes and writes nothing, so it is a read). FastAPI's own pages
(``/docs``, ``/openapi.json``) are open; anything unknown is treated as a write unless it is
a GET or HEAD.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

import anyio
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalsuite.api.auth import Refused, authorize, remember
from evalsuite.api.deps import read_session, worker_session, write_session
from evalsuite.api.jsondepth import depth_problem
from evalsuite.settings import Settings, variable

Access = Literal["open", "read", "write", "worker"]
READ_METHODS = frozenset({"GET", "HEAD"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# below this the depth scan takes well under a millisecond; above it, a worker thread keeps
# the event loop answering other requests meanwhile
THREAD_SCAN_BYTES = 1 << 20


class BodyCap(NamedTuple):
    """The most a request may send, the setting it comes from, and how long it may take."""

    max_bytes: int
    variable: str
    timeout_s: int | None  # None: no deadline (a token holder's upload may take its time)


def body_cap(settings: Settings, access: Access) -> BodyCap:
    """Writes are token-checked and may upload results; everything else gets a read's cap."""
    if access in ("write", "worker"):
        return BodyCap(settings.max_body_bytes, variable("max_body_bytes"), None)
    return BodyCap(
        settings.max_read_body_bytes, variable("max_read_body_bytes"), settings.header_timeout_s
    )


def _calls(dependant: Dependant) -> Iterator[object]:
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield current.call
        pending.extend(current.dependencies)


def route_access(route: BaseRoute) -> Access:
    """What a route needs, from the session its handler takes."""
    if not isinstance(route, APIRoute):
        return "open"  # FastAPI's /docs, /redoc, /openapi.json
    calls = set(_calls(route.dependant))
    if worker_session in calls:
        return "worker"
    if write_session in calls:
        return "write"
    if read_session in calls:
        return "read"
    return "read" if route.methods <= READ_METHODS else "write"


class RequestGuard:
    """ASGI middleware: ``app.add_middleware(RequestGuard, settings=..., routes=app.routes)``."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: list[BaseRoute]) -> None:
        self.app = app
        self.settings = settings
        self.routes = routes  # the app's live list: routes added later are seen too
        # id(route) -> its access: the walk over a route's dependencies runs once, not per
        # request (routes are unhashable; they live as long as the app)
        self._access: dict[int, Access] = {}

    def access(self, scope: Scope) -> Access:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                if id(route) not in self._access:
                    self._access[id(route)] = route_access(route)
                return self._access[id(route)]
        return "read" if scope["method"] in READ_METHODS else "write"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        access = self.access(scope)
        if access in ("write", "worker") or (access == "read" and self.settings.read_auth):
            try:
                grant = authorize(self.settings, headers.get("authorization"), access == "worker")
            except Refused as refused:
                await _answer(scope, send, refused.status, refused.detail, refused.headers)
                return
            remember(scope, grant)
        cap = body_cap(self.settings, access)
        length = headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            await _answer(scope, send, 400, f"Content-Length {length!r} is not a byte count")
            return
        if length is not None and int(length) > cap.max_bytes:
            await _answer(scope, send, 413, _too_large(cap, int(length)))
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)  # a GET's body is never read: uvicorn drops it
            return
        body = await self._read_body(scope, receive, send, cap)
        if body is None:
            return
        if body and _parsed_as_json(headers.get("content-type")):
            limit = self.settings.max_json_depth
            if len(body) > THREAD_SCAN_BYTES:
                problem = await anyio.to_thread.run_sync(depth_problem, body, limit)
            else:
                problem = depth_problem(body, limit)
            if problem:
                await _answer(scope, send, 422, problem)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(
        self, scope: Scope, receive: Receive, send: Send, cap: BodyCap
    ) -> bytes | None:
        """The whole body, or None once it is answered 413 or 408 (or the client went away)."""
        received: bytes | int | None = 408  # what is left when the deadline passes
        with anyio.move_on_after(cap.timeout_s):  # None: no deadline
            received = await _collect(receive, cap.max_bytes)
        if received == 413:
            await _answer(scope, send, 413, _too_large(cap, None))
        elif received == 408:
            detail = (
                f"the request body did not arrive within {cap.timeout_s} s "
                f"({variable('header_timeout_s')}): send it at once"
            )
            await _answer(scope, send, 408, detail)
        return received if isinstance(received, bytes) else None


async def _collect(receive: Receive, max_bytes: int) -> bytes | int | None:
    """The body as it streams in; 413 as soon as it passes ``max_bytes`` (no more is held),
    None if the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return 413
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(cap: BodyCap, length: int | None) -> str:
    size = f"request body of {length} bytes" if length is not None else "request body"
    return (
        f"{size} is larger than this route accepts ({cap.max_bytes} bytes, {cap.variable}): "
        "send less per request, or raise the limit on the server"
    )


def _parsed_as_json(content_type: str | None) -> bool:
    """Bodies FastAPI may parse as JSON: application/json, application/*+json, and (with
    ``strict_content_type=False`` or an older FastAPI) none declared."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = kind.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read here, then passes on (disconnects)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    async def nothing() -> Message:  # the answer never reads the request
        return {"type": "http.disconnect"}

    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, nothing, send)
