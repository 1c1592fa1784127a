"""The request guard: bearer tokens, the body-size cap and the JSON depth limit, enforced
before the application reads a single byte of the body.

A FastAPI dependency runs only after FastAPI has read and parsed the whole body, so an
unauthenticated client could make the service buffer and parse any amount of JSON. This is a
plain ASGI middleware (not ``BaseHTTPMiddleware``, which wraps ``receive`` in ways that make
"not read yet" hard to guarantee), in this order:

1. the token, from the headers alone: a refused request is answered 401 and its body is never
   read (uvicorn discards it; ``Expect: 100-continue`` clients are never told to send it);
2. ``Content-Length`` above ``EVALSUITE_API_MAX_BODY_BYTES``: 413 before reading;
3. the body, counted as it streams in (chunked bodies have no length): 413 as soon as it
   passes the maximum, so no more than the maximum is ever held;
4. a JSON body nested deeper than ``EVALSUITE_API_MAX_JSON_DEPTH``: 422 before parsing.

Which requests need a token is declared once, by the route itself: a handler that takes a
``WriteSession`` needs one always, a ``ReadSession`` only with ``EVALSUITE_API_READ_AUTH=1``
(``POST /v1/gate`` computes and writes nothing, so it is a read). FastAPI's own pages
(``/docs``, ``/openapi.json``) are open; anything unknown is treated as a write unless it is
a GET or HEAD.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Literal

import anyio
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalsuite.api.deps import read_session, write_session
from evalsuite.api.jsondepth import depth_problem
from evalsuite.settings import Settings

Access = Literal["open", "read", "write"]
READ_METHODS = frozenset({"GET", "HEAD"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# below this the depth scan takes well under a millisecond; above it, a worker thread keeps
# the event loop answering other requests meanwhile
THREAD_SCAN_BYTES = 1 << 20


def token_problem(settings: Settings, authorization: str | None) -> str | None:
    """Why the ``Authorization`` header is not accepted (None: it is)."""
    if not settings.tokens:
        return (
            "this API has no token configured, so it refuses requests that need one: start "
            "it with EVALSUITE_API_TOKEN=<token> (or EVALSUITE_API_TOKEN_FILE=<file, one per "
            "line>)"
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return (
            "missing bearer token: send 'Authorization: Bearer <token>' with a token from "
            "the server's EVALSUITE_API_TOKEN"
        )
    given_bytes = given.strip().encode()
    # every token is compared, so the time taken does not tell which one came close
    if not sum(secrets.compare_digest(given_bytes, t.encode()) for t in settings.tokens):
        return "bearer token not accepted: check EVALSUITE_API_TOKEN on both sides"
    return None


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
        if access == "write" or (access == "read" and self.settings.read_auth):
            problem = token_problem(self.settings, headers.get("authorization"))
            if problem:
                await _answer(scope, send, 401, problem, {"WWW-Authenticate": "Bearer"})
                return
        length = headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            await _answer(scope, send, 400, f"Content-Length {length!r} is not a byte count")
            return
        if length is not None and int(length) > self.settings.max_body_bytes:
            await _answer(scope, send, 413, self._too_large(int(length)))
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)  # a GET's body is never read: uvicorn drops it
            return
        body = await self._read_body(scope, receive, send)
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

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once it is answered 413 (or the client went away)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                chunks.clear()
                await _answer(scope, send, 413, self._too_large(None))
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, length: int | None) -> str:
        size = f"request body of {length} bytes" if length is not None else "request body"
        return (
            f"{size} is larger than this API accepts "
            f"({self.settings.max_body_bytes} bytes, EVALSUITE_API_MAX_BODY_BYTES): send less "
            "per request, or raise the limit on the server"
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
