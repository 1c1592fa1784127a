"""Alembic from empty to head and back to base, on both backends, through the CLI too."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from service_support import BACKENDS, make_database
from sqlalchemy import inspect
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
