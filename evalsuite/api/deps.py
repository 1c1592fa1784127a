"""Request dependencies: the database session and bearer-token checks.

Reads get a plain session; writes get one transaction that commits when the handler returns
and rolls back on any error, so a request is all-or-nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from evalsuite.api.settings import Settings
from evalsuite.store import Database

bearer = HTTPBearer(auto_error=False, description="a token from EVALSUITE_API_TOKEN(_FILE)")


def _database(request: Request) -> Database:
    return request.app.state.db


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _check_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    if not settings.tokens:
        raise HTTPException(
            401,
            "this API has no token configured, so it refuses writes: start it with "
            "EVALSUITE_API_TOKEN=<token> (or EVALSUITE_API_TOKEN_FILE=<file, one per line>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if credentials is None:
        raise HTTPException(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>' with a token from "
            "the server's EVALSUITE_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode()
    if not any(secrets.compare_digest(given, token.encode()) for token in settings.tokens):
        raise HTTPException(
            401,
            "bearer token not accepted: check EVALSUITE_API_TOKEN on both sides",
            headers={"WWW-Authenticate": "Bearer"},
        )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def read_session(request: Request, credentials: Credentials) -> Iterator[Session]:
    """A session for a read; needs a token only when EVALSUITE_API_READ_AUTH=1."""
    settings = _settings(request)
    if settings.read_auth:
        _check_token(settings, credentials)
    with _database(request).reading() as session:
        yield session


def write_session(request: Request, credentials: Credentials) -> Iterator[Session]:
    """One write transaction, after the bearer token is checked."""
    _check_token(_settings(request), credentials)
    with _database(request).writing() as session:
        yield session


# scope="function": commit before the response is sent, so an answer means the write is durable
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(_settings)]
