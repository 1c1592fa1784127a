"""Errors of the store, each mapped to one HTTP status by the API."""

from __future__ import annotations

from evalsuite.errors import EvalsuiteError


class StoreError(EvalsuiteError):
    """The database is misconfigured or unreachable."""


class NotFound(StoreError):
    """A run, checkpoint or job that does not exist (HTTP 404)."""


class Conflict(StoreError):
    """A request that contradicts what is stored, e.g. a lease that is no longer yours (409)."""


class BadInput(StoreError):
    """Input that is well-formed JSON but cannot be stored as given (HTTP 422)."""
