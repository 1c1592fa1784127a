"""Who is calling and what they may write: the bearer token's grant (``evalsuite.tokens``).

The guard (``evalsuite.api.guard``) calls :func:`authorize` from the headers alone, before
the body is read: an unknown token is a 401, a scoped token on a worker route a 403. It
leaves the grant in the request's state, where handlers take it as ``Caller``
(``evalsuite.api.deps``) and check the run they touch with :func:`require_run` before
writing: the run a request touches is often known only from the database (a checkpoint's or
a job's run), so that check cannot be made in front of the application.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException
from starlette.types import Scope

from evalsuite.settings import Settings
from evalsuite.tokens import Grant

# the key of the grant in the ASGI scope's "state" (what ``request.state`` reads)
STATE_KEY = "evalsuite_grant"
WORKER_ROUTES = "claiming, heartbeats, completing, failing and releasing jobs"


class Refused(Exception):
    """A request the guard answers itself, with ``status`` and ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def grant_for(settings: Settings, authorization: str | None) -> Grant:
    """The grant the ``Authorization`` header carries; Refused (401) says why there is none."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not settings.grants:
        raise Refused(
            401,
            "this API has no token configured, so it refuses requests that need one: start "
            "it with EVALSUITE_API_TOKEN=<token> (or EVALSUITE_API_TOKEN_FILE=<file, one per "
            "line>)",
            challenge,
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Refused(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' with a token from "
            "the server's EVALSUITE_API_TOKEN",
            challenge,
        )
    given_bytes = given.strip().encode()
    # every token is compared, so the time taken does not tell which one came close
    matches = [g for g in settings.grants if secrets.compare_digest(given_bytes, g.secret.encode())]
    if not matches:
        raise Refused(
            401, "bearer token not accepted: check EVALSUITE_API_TOKEN on both sides", challenge
        )
    return matches[0]


def authorize(settings: Settings, authorization: str | None, worker: bool) -> Grant:
    """The caller's grant for a route; a worker route (``worker=True``) needs an unscoped
    one, since the queue hands a worker any run's job. Refused: 401 or 403."""
    grant = grant_for(settings, authorization)
    if worker and grant.scoped:
        raise Refused(
            403,
            f"token {grant.label!r} is scoped to runs {grant.scope} and cannot act as a "
            f"worker: {WORKER_ROUTES} need an unscoped token (EVALSUITE_API_TOKEN, or a "
            "line of EVALSUITE_API_TOKEN_FILE without runs=)",
        )
    return grant


def remember(scope: Scope, grant: Grant) -> None:
    """Leave ``grant`` where ``request.state`` finds it."""
    scope.setdefault("state", {})[STATE_KEY] = grant


def require_run(grant: Grant, run: str) -> None:
    """403 unless ``grant`` may write run ``run``: checked before anything is written."""
    if not grant.allows(run):
        raise HTTPException(
            403,
            f"token {grant.label!r} may write only runs matching {grant.scope} (its runs= in "
            f"EVALSUITE_API_TOKEN_FILE), and run {run!r} is outside that scope: name the run "
            "to match it, or use a token whose scope covers that run",
        )
