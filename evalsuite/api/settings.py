"""Settings of the API service, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.errors import EvalsuiteError


class SettingsError(EvalsuiteError):
    """An API setting that cannot be used as given."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    tokens: frozenset[str] = field(default_factory=frozenset)
    read_auth: bool = False
    max_attempts: int = 3

    @classmethod
    def from_env(cls, database_url: str | None = None) -> Settings:
        """``EVALSUITE_DATABASE_URL``, ``EVALSUITE_API_TOKEN`` / ``_TOKEN_FILE``, ``_READ_AUTH``,
        ``EVALSUITE_MAX_ATTEMPTS``."""
        tokens = set()
        if os.environ.get("EVALSUITE_API_TOKEN"):
            tokens.add(os.environ["EVALSUITE_API_TOKEN"].strip())
        token_file = os.environ.get("EVALSUITE_API_TOKEN_FILE")
        if token_file:
            try:
                lines = Path(token_file).read_text().splitlines()
            except OSError as exc:
                raise SettingsError(
                    f"cannot read EVALSUITE_API_TOKEN_FILE {token_file}: {exc.strerror}; "
                    "point it at a file with one token per line"
                ) from None
            tokens.update(line.strip() for line in lines if line.strip())
        attempts = os.environ.get("EVALSUITE_MAX_ATTEMPTS", "3")
        if not attempts.isdigit() or int(attempts) < 1:
            raise SettingsError(f"EVALSUITE_MAX_ATTEMPTS must be an integer >= 1, not {attempts!r}")
        return cls(
            database_url=database_url or os.environ.get("EVALSUITE_DATABASE_URL"),
            tokens=frozenset(tokens),
            read_auth=os.environ.get("EVALSUITE_API_READ_AUTH", "") in ("1", "true", "yes"),
            max_attempts=int(attempts),
        )
