"""Where the store lives and how connections to it behave.

One URL selects the database (``EVALSUITE_DATABASE_URL``); without it, a SQLite file in the
user's data directory. SQLite needs two adjustments to behave like a shared database: WAL so
readers never wait for the writer, and ``BEGIN IMMEDIATE`` for write transactions so two
writers queue on the database lock instead of failing when one upgrades a read lock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from evalsuite.settings import get_settings
from evalsuite.store.errors import StoreError

# execution option that marks a write transaction (SQLite: BEGIN IMMEDIATE)
WRITE_OPTION = "evalsuite_write"


def default_url() -> str:
    """The embedded default: ``evalsuite.db`` in the user's data directory."""
    from platformdirs import user_data_dir

    directory = Path(user_data_dir("evalsuite"))
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'evalsuite.db'}"


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else ``$EVALSUITE_DATABASE_URL``, else the default."""
    chosen = url or get_settings().database_url or default_url()
    try:
        parsed = make_url(chosen)
    except ArgumentError as exc:
        raise StoreError(
            f"cannot parse database URL {chosen!r}: {exc}; use e.g. "
            "sqlite:////path/to/evalsuite.db or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r} in {chosen!r}: "
            "evalsuite supports sqlite and postgresql"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver that ships with evalsuite
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_dumps(value) -> str:
    """Strict JSON for JSON columns: PostgreSQL refuses NaN and Infinity, so they become null."""
    try:
        return json.dumps(value, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(value), default=str)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # let SQLAlchemy's "begin" event decide how each transaction starts
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (resolved by :func:`database_url`), SQLite tuned for concurrency."""
    resolved = database_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            resolved,
            connect_args={"timeout": 30, "check_same_thread": False},
            json_serializer=json_dumps,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        resolved, pool_size=10, max_overflow=20, pool_pre_ping=True, json_serializer=json_dumps
    )


class Database:
    """An engine plus sessions for reading and for writing (writes lock early on SQLite)."""

    def __init__(self, url: str | None = None) -> None:
        self.engine = make_engine(url)
        self.backend = self.engine.dialect.name
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end, nothing is written."""
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back on an error."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
