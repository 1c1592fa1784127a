"""Alembic driven from code: the revisions ship inside the package, so no alembic.ini is needed."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from evalsuite.store.db import database_url, make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged revisions and the resolved database URL."""
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser would read '%' in a password as interpolation
    config.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database to ``revision`` (creating it from empty if needed)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Step the database back to ``revision`` (``base``: no tables left)."""
    command.downgrade(alembic_config(url), revision)


def head() -> str:
    """The newest revision shipped with this version of evalsuite."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def current(url: str | None = None) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
