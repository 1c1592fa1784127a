"""Request dependencies: the database session for a read, a write or a worker's write, and
the caller's token grant.

Reads get a plain session; writes get one transaction that commits when the handler returns
and rolls back on any error, so a request is all-or-nothing.

Which session a handler takes also declares who may call it: ``evalsuite.api.guard`` checks
the bearer token for every route that takes a ``WriteSession`` (and for ``ReadSession``
routes when ``EVALSUITE_API_READ_AUTH=1``) before the body is read; a ``WorkerSession`` (the
queue's claim, heartbeat, complete, fail, release) also needs an unscoped token. What is
left to handlers is the run scope: a handler that writes a run takes ``Caller`` and calls
``evalsuite.api.auth.require_run`` with the run's name before writing. The ``bearer``
dependency only puts the scheme into the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from evalsuite.api.auth import STATE_KEY
from evalsuite.settings import Settings
from evalsuite.store import Database
from evalsuite.tokens import Grant

bearer = HTTPBearer(auto_error=False, description="a token from EVALSUITE_API_TOKEN(_FILE)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _database(request: Request) -> Database:
    return request.app.state.db


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def read_session(request: Request, _credentials: Credentials) -> Iterator[Session]:
    """A session for a read (the guard asked for a token if EVALSUITE_API_READ_AUTH=1)."""
    with _database(request).reading() as session:
        yield session


def write_session(request: Request, _credentials: Credentials) -> Iterator[Session]:
    """One write transaction (the guard has checked the bearer token)."""
    with _database(request).writing() as session:
        yield session


def worker_session(request: Request, _credentials: Credentials) -> Iterator[Session]:
    """One write transaction of a worker (the guard has checked the token is unscoped)."""
    with _database(request).writing() as session:
        yield session


def _caller(request: Request) -> Grant:
    """The grant the guard accepted for this request."""
    grant = getattr(request.state, STATE_KEY, None)
    if grant is None:  # a write route always passes the guard; this is a wiring fault
        raise HTTPException(401, "no bearer token was checked for this request")
    return grant


# scope="function": commit before the response is sent, so an answer means the write is durable
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
WorkerSession = Annotated[Session, Depends(worker_session, scope="function")]
Caller = Annotated[Grant, Depends(_caller)]
SettingsDep = Annotated[Settings, Depends(_settings)]
