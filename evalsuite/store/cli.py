"""``evalsuite db upgrade|downgrade|current``: migrate the store named by the database URL."""

from __future__ import annotations

from typing import Annotated

import typer

from evalsuite.store import migrate
from evalsuite.store.db import database_url
from evalsuite.store.errors import StoreError

db_app = typer.Typer(no_args_is_help=True, help="Create and migrate the results database.")
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL (default: $EVALSUITE_DATABASE_URL, else a SQLite "
        "file in the user's data directory).",
    ),
]


def _safe(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url(url)).render_as_string(hide_password=True)


def _migrating(action, url: str | None, revision: str) -> None:
    from sqlalchemy.exc import OperationalError

    try:
        action(url, revision)
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise StoreError(f"cannot migrate {_safe(url)}: {reason}") from None


@db_app.command("upgrade")
def upgrade(url: UrlOption = None, revision: str = "head") -> None:
    """Create the tables or bring them to the newest revision."""
    _migrating(migrate.upgrade, url, revision)
    typer.echo(f"{_safe(url)} at revision {migrate.current(url)}")


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    url: UrlOption = None,
) -> None:
    """Step the tables back to an older revision."""
    _migrating(migrate.downgrade, url, revision)
    typer.echo(f"{_safe(url)} at revision {migrate.current(url) or 'base (no tables)'}")


@db_app.command("current")
def current(url: UrlOption = None) -> None:
    """Which revision the database is at, and the newest this evalsuite ships."""
    at = migrate.current(url) or "none (run 'evalsuite db upgrade')"
    typer.echo(f"{_safe(url)}: revision {at}; newest {migrate.head()}")
