"""Alembic from empty to head and back to base, on both backends, through the CLI too."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from service_support import BACKENDS, make_database
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.store import migrate
from evalsuite.store.db import make_engine

TABLES = {"base_models", "runs", "checkpoints", "jobs", "scores", "samples"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_matches_the_models_and_downgrade_removes_all(backend, tmp_path):
    url, drop = make_database(backend, tmp_path)
    try:
        assert _tables(url) == set()
        assert migrate.current(url) is None
        migrate.upgrade(url)
        assert migrate.current(url) == migrate.head()
        assert _tables(url) == TABLES
        # the migrated schema is exactly what the models describe (raises on any difference)
        command.check(migrate.alembic_config(url))
        migrate.downgrade(url, "base")
        assert _tables(url) == set()
        assert migrate.current(url) is None
        migrate.upgrade(url)
        assert _tables(url) == TABLES
    finally:
        drop()


def test_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    up = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert up.exit_code == 0 and f"revision {migrate.head()}" in up.output
    assert "newest" in runner.invoke(app, ["db", "current", "--url", url]).output
    down = runner.invoke(app, ["db", "downgrade", "base", "--url", url])
    assert down.exit_code == 0 and _tables(url) == set()


def test_unusable_database_url_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "evalsuite.cli", "db", "upgrade", "--url", "mysql://host/db"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "supports sqlite and postgresql" in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_registered_by_is_added_to_stored_checkpoints_and_removed_again(backend, tmp_path):
    """Revision 0003 on a database holding a checkpoint: the row keeps its data and reads
    ``registered_by`` as null; stepping back to 0002 removes only that column."""
    url, drop = make_database(backend, tmp_path)
    engine = make_engine(url)
    try:
        migrate.upgrade(url, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO base_models (id, name, created_at) "
                    "VALUES (1, 'A', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO runs (id, name, method, domain, base_model_id, metadata, "
                    "created_at) VALUES (1, 'old-run', 'lora', 'code', 1, '{}', "
                    "CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO checkpoints (id, run_id, epoch, uri, sha256, final, created_at) "
                    "VALUES (1, 1, 1.0, '/old', 'ab', false, CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(url, "0003")
        assert "registered_by" in _columns(engine, "checkpoints")
        with engine.connect() as conn:
            row = conn.execute(text("SELECT uri, registered_by FROM checkpoints")).one()
        assert tuple(row) == ("/old", None)
        with engine.begin() as conn:
            conn.execute(text("UPDATE checkpoints SET registered_by = 'alice'"))
        migrate.downgrade(url, "0002")
        engine.dispose()  # SQLite's batch copy replaced the table under open connections
        assert "registered_by" not in _columns(engine, "checkpoints")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT uri FROM checkpoints")).scalar_one() == "/old"
    finally:
        engine.dispose()
        drop()


def _columns(engine, table: str) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns(table)}
