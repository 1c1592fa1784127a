"""The package's settings: every ``EVALSUITE_*`` environment variable, read in one place.

``get_settings()`` reads the environment once per process (tests call
``get_settings.cache_clear()`` after changing it); ``cache_root()`` is the one cache
directory every cache lives under. A value that cannot be used stops with a
``SettingsError`` that names the variable and what it accepts. README.md, "Configuration",
lists the same variables (a test keeps the two in step).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.tokens import SYNTAX, Grant, parse_line

# Where clients (worker, submit, dashboard) look for the results service when nothing says.
DEFAULT_API_URL = "http://127.0.0.1:8000"
# The largest legitimate body is a worker's ``complete`` of HumanEval+: 164 problems x 50
# samples = 8,200 rows, each with a completion of up to 2,048 tokens (~8 KB of text, more
# once JSON-escaped) and the scorer's details (test output), about 100 MB at worst; MATH is
# 5,000 rows of up to 2,048 tokens, about 40 MB. 256 MiB leaves room above both.
DEFAULT_MAX_BODY_BYTES = 256 * 2**20
# Bodies sent to the routes that write nothing (every GET and ``POST /v1/gate``), which answer
# without a token, are capped here. The only such body is the gate's: the largest its schema
# lets through (100 checks, names of 512 characters, non-ASCII escaped as \uXXXX) is about
# 620 KB (tests/test_api_limits.py builds it), a real one under 2 KB.
DEFAULT_MAX_READ_BODY_BYTES = 2**20
# The request line and headers (and a read's whole body) must arrive within this many
# seconds of the connection, or of the previous answer on it; then the connection is closed.
DEFAULT_HEADER_TIMEOUT_S = 10
# Connections served at once; a request on one more is answered 503 at once. Workers, the
# dashboard and the gate hold a handful; each connection holds at most one read's body.
DEFAULT_MAX_CONNECTIONS = 100
# Real bodies nest fewer than 10 levels (a samples row inside ``samples`` inside the body).
DEFAULT_MAX_JSON_DEPTH = 64
# Above this, storing a document would be allowed that the response serializer (pydantic,
# ~255 levels including the response's own wrapping) cannot write back: reads would fail.
JSON_DEPTH_CEILING = 200
DEFAULT_MAX_ATTEMPTS = 3

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class SettingsError(EvalsuiteError):
    """A setting that cannot be used as given."""


def _env(name: str, doc: str) -> dict[str, str]:
    """A field's metadata: the variable it is read from and one line saying what it does."""
    return {"env": name, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """Every setting of the package; ``Settings.from_env()`` reads them, defaults below."""

    api_url: str | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_API_URL",
            f"results service for the worker, submit, gate and dashboard "
            f"(clients default to {DEFAULT_API_URL}; the gate needs it only for RUN refs)",
        ),
    )
    api_token: str | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_API_TOKEN",
            "bearer token: the API accepts it for writes; clients send it",
        ),
    )
    api_token_file: Path | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_API_TOKEN_FILE",
            "API: a text file of more accepted tokens, one per line ('#' starts a comment "
            "line); a line may add name=NAME and runs=GLOB[,GLOB] to scope the token",
        ),
    )
    # Not a variable of its own: EVALSUITE_API_TOKEN (unscoped, unnamed) and the lines of
    # the token file, each with its name and scope (evalsuite.tokens).
    grants: tuple[Grant, ...] = ()
    database_url: str | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_DATABASE_URL",
            "store: a SQLAlchemy URL, sqlite or postgresql (default: SQLite in the user data dir)",
        ),
    )
    cache_dir: Path | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_CACHE_DIR",
            "root of every cache: merged models, exported LoRAs, HumanEval+ ground truth "
            "(default: the user cache dir)",
        ),
    )
    work_dir: Path | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_WORK_DIR",
            "worker: one results directory per job (default: jobs/ under the cache root)",
        ),
    )
    read_auth: bool = field(
        default=False,
        metadata=_env("EVALSUITE_API_READ_AUTH", "API: 1 makes reads need a token too"),
    )
    max_attempts: int = field(
        default=DEFAULT_MAX_ATTEMPTS,
        metadata=_env("EVALSUITE_MAX_ATTEMPTS", "API: tries of a job before it is FAILED"),
    )
    max_body_bytes: int = field(
        default=DEFAULT_MAX_BODY_BYTES,
        metadata=_env("EVALSUITE_API_MAX_BODY_BYTES", "API: larger request bodies are a 413"),
    )
    max_read_body_bytes: int = field(
        default=DEFAULT_MAX_READ_BODY_BYTES,
        metadata=_env(
            "EVALSUITE_API_MAX_READ_BODY_BYTES",
            "API: larger bodies sent to reads (GETs, POST /v1/gate), which need no token, "
            "are a 413",
        ),
    )
    header_timeout_s: int = field(
        default=DEFAULT_HEADER_TIMEOUT_S,
        metadata=_env(
            "EVALSUITE_API_HEADER_TIMEOUT",
            "API: seconds a request's headers (and a read's body) may take to arrive; then "
            "the connection is closed (408)",
        ),
    )
    max_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS,
        metadata=_env(
            "EVALSUITE_API_MAX_CONNECTIONS",
            "API: connections served at once (per uvicorn worker); a request on one more is a 503",
        ),
    )
    max_json_depth: int = field(
        default=DEFAULT_MAX_JSON_DEPTH,
        metadata=_env(
            "EVALSUITE_API_MAX_JSON_DEPTH",
            f"API: deeper JSON bodies are a 422 (at most {JSON_DEPTH_CEILING})",
        ),
    )
    kv_cache_bytes: int | None = field(
        default=None,
        metadata=_env(
            "EVALSUITE_KV_CACHE_BYTES",
            "vLLM on CPU: KV cache size (default: sized from the model and free memory)",
        ),
    )
    allow_basic_sandbox: bool = field(
        default=False,
        metadata=_env(
            "EVALSUITE_ALLOW_BASIC_SANDBOX",
            "eval, worker: 1 scores HumanEval+ in the sandbox's weak basic mode where the "
            "bubblewrap jail cannot start, instead of refusing (--allow-basic-sandbox)",
        ),
    )

    @classmethod
    def from_env(cls, database_url: str | None = None) -> Settings:
        """Every variable of ``ENVIRONMENT`` from ``os.environ``; ``database_url`` overrides
        ``EVALSUITE_DATABASE_URL`` (``evalsuite api --database-url``)."""
        token = _text("EVALSUITE_API_TOKEN")
        token_file = _path("EVALSUITE_API_TOKEN_FILE")
        return cls(
            api_url=_text("EVALSUITE_API_URL"),
            api_token=token,
            api_token_file=token_file,
            grants=_grants(token, token_file),
            database_url=database_url or _text("EVALSUITE_DATABASE_URL"),
            cache_dir=_path("EVALSUITE_CACHE_DIR"),
            work_dir=_path("EVALSUITE_WORK_DIR"),
            read_auth=_boolean("EVALSUITE_API_READ_AUTH"),
            max_attempts=_integer("EVALSUITE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, None),
            max_body_bytes=_integer(
                "EVALSUITE_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1, None
            ),
            max_read_body_bytes=_integer(
                "EVALSUITE_API_MAX_READ_BODY_BYTES", DEFAULT_MAX_READ_BODY_BYTES, 1, None
            ),
            header_timeout_s=_integer(
                "EVALSUITE_API_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT_S, 1, None
            ),
            max_connections=_integer(
                "EVALSUITE_API_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, 1, None
            ),
            max_json_depth=_integer(
                "EVALSUITE_API_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, 1, JSON_DEPTH_CEILING
            ),
            kv_cache_bytes=_integer("EVALSUITE_KV_CACHE_BYTES", None, 1, None),
            allow_basic_sandbox=_boolean("EVALSUITE_ALLOW_BASIC_SANDBOX"),
        )

    @property
    def tokens(self) -> frozenset[str]:
        """Every accepted token's secret."""
        return frozenset(grant.secret for grant in self.grants)

    @property
    def client_api_url(self) -> str:
        """The service a client talks to: ``api_url``, else the local default."""
        return self.api_url or DEFAULT_API_URL

    @property
    def cache_root(self) -> Path:
        """``cache_dir``, else the user's cache directory (XDG on Linux)."""
        if self.cache_dir is not None:
            return self.cache_dir
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("evalsuite"))

    @property
    def jobs_dir(self) -> Path:
        """``work_dir``, else ``jobs/`` under the cache root."""
        return self.work_dir if self.work_dir is not None else self.cache_root / "jobs"


# variable -> one line on what it does, in the order of the fields
ENVIRONMENT: dict[str, str] = {
    f.metadata["env"]: f.metadata["doc"] for f in fields(Settings) if "env" in f.metadata
}
_VARIABLE = {f.name: f.metadata["env"] for f in fields(Settings) if "env" in f.metadata}


def variable(name: str) -> str:
    """The environment variable of the field ``name``, for messages that tell the user which
    setting to change (e.g. ``variable("max_body_bytes")``)."""
    return _VARIABLE[name]


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on the first call only."""
    return Settings.from_env()


def cache_root() -> Path:
    """The directory every evalsuite cache lives under: ``$EVALSUITE_CACHE_DIR``, else the
    user's cache directory."""
    return get_settings().cache_root


def environment_for(**values: object) -> dict[str, str]:
    """The variables that give a child process these settings, e.g.
    ``environment_for(database_url=url)``; ``None`` values are left out."""
    unknown = sorted(set(values) - set(_VARIABLE))
    if unknown:
        raise TypeError(f"not settings read from the environment: {', '.join(unknown)}")
    return {_VARIABLE[name]: str(value) for name, value in values.items() if value is not None}


def _text(name: str) -> str | None:
    """``$name`` without surrounding whitespace; unset or blank is ``None``."""
    return os.environ.get(name, "").strip() or None


def _path(name: str) -> Path | None:
    raw = _text(name)
    return Path(raw).expanduser() if raw else None


def _boolean(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}")


def _integer(name: str, default: int | None, low: int, high: int | None) -> int | None:
    """``$name`` as an integer in [low, high], else a SettingsError that says what is allowed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    allowed = f">= {low}" if high is None else f"between {low} and {high}"
    if not raw.isdigit() or not (low <= int(raw) and (high is None or int(raw) <= high)):
        raise SettingsError(f"{name} must be an integer {allowed}, not {raw!r}")
    return int(raw)


def _grants(token: str | None, token_file: Path | None) -> tuple[Grant, ...]:
    """EVALSUITE_API_TOKEN (unscoped) and the token file's grants; one secret with two
    different names or scopes is refused, as is one name given to two secrets (a
    checkpoint's ``registered_by`` would not say which token it was)."""
    seen: dict[str, tuple[Grant, str]] = {}
    named: dict[str, str] = {}
    where_env = "EVALSUITE_API_TOKEN"
    found = ([(Grant(secret=token), where_env)] if token else []) + _file_grants(token_file)
    for grant, where in found:
        if grant.secret in seen:
            if seen[grant.secret][0] != grant:
                raise SettingsError(
                    f"{where} repeats the token of {seen[grant.secret][1]} with another name "
                    "or runs=: a token has one name and one scope; keep one of the two lines"
                )
            continue
        if grant.name is not None and named.setdefault(grant.name, where) != where:
            raise SettingsError(
                f"{where} reuses name={grant.name}, already the name of {named[grant.name]}'s "
                "token: give each token its own name"
            )
        seen[grant.secret] = (grant, where)
    return tuple(grant for grant, _ in seen.values())


def _file_grants(token_file: Path | None) -> list[tuple[Grant, str]]:
    """The token file's lines as grants, each with where it is (``EVALSUITE_API_TOKEN_FILE
    <path> line <n>``): blank lines and ``#`` comments are skipped (a comment line must never
    be a token someone could send), surrounding whitespace is stripped."""
    if token_file is None:
        return []
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(
            f"cannot read EVALSUITE_API_TOKEN_FILE {token_file}: {why}; "
            "point it at a text file with one token per line"
        ) from None
    grants = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"EVALSUITE_API_TOKEN_FILE {token_file} line {number}"
        try:
            grants.append((parse_line(stripped), where))
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}; a line reads {SYNTAX}") from None
    return grants
