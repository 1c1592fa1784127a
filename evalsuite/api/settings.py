"""Settings of the API service, read from the environment once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from evalsuite.errors import EvalsuiteError

# The largest legitimate body is a worker's ``complete`` of HumanEval+: 164 problems x 50
# samples = 8,200 rows, each with a completion of up to 2,048 tokens (~8 KB of text, more
# once JSON-escaped) and the scorer's details (test output), about 100 MB at worst; MATH is
# 5,000 rows of up to 2,048 tokens, about 40 MB. 256 MiB leaves room above both.
DEFAULT_MAX_BODY_BYTES = 256 * 2**20
# Real bodies nest fewer than 10 levels (a samples row inside ``samples`` inside the body).
DEFAULT_MAX_JSON_DEPTH = 64
# Above this, storing a document would be allowed that the response serializer (pydantic,
# ~255 levels including the response's own wrapping) cannot write back: reads would fail.
JSON_DEPTH_CEILING = 200


class SettingsError(EvalsuiteError):
    """An API setting that cannot be used as given."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    tokens: frozenset[str] = field(default_factory=frozenset)
    read_auth: bool = False
    max_attempts: int = 3
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    @classmethod
    def from_env(cls, database_url: str | None = None) -> Settings:
        """``EVALSUITE_DATABASE_URL``, ``EVALSUITE_API_TOKEN`` / ``_TOKEN_FILE``, ``_READ_AUTH``,
        ``EVALSUITE_MAX_ATTEMPTS``, ``EVALSUITE_API_MAX_BODY_BYTES``, ``_MAX_JSON_DEPTH``."""
        tokens = set()
        if os.environ.get("EVALSUITE_API_TOKEN"):
            tokens.add(os.environ["EVALSUITE_API_TOKEN"].strip())
        token_file = os.environ.get("EVALSUITE_API_TOKEN_FILE")
        if token_file:
            try:
                lines = Path(token_file).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise SettingsError(
                    f"cannot read EVALSUITE_API_TOKEN_FILE {token_file}: {why}; "
                    "point it at a text file with one token per line"
                ) from None
            tokens.update(line.strip() for line in lines if line.strip())
        return cls(
            database_url=database_url or os.environ.get("EVALSUITE_DATABASE_URL"),
            tokens=frozenset(tokens),
            read_auth=os.environ.get("EVALSUITE_API_READ_AUTH", "") in ("1", "true", "yes"),
            max_attempts=_integer("EVALSUITE_MAX_ATTEMPTS", 3, 1, None),
            max_body_bytes=_integer(
                "EVALSUITE_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1, None
            ),
            max_json_depth=_integer(
                "EVALSUITE_API_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, 1, JSON_DEPTH_CEILING
            ),
        )


def _integer(name: str, default: int, low: int, high: int | None) -> int:
    """``$name`` as an integer in [low, high], else a SettingsError that says what is allowed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    allowed = f">= {low}" if high is None else f"between {low} and {high}"
    if not raw.isdigit() or not (low <= int(raw) and (high is None or int(raw) <= high)):
        raise SettingsError(f"{name} must be an integer {allowed}, not {raw!r}")
    return int(raw)
