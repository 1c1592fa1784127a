"""``evalsuite api``: serve the results API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``api`` command to the top-level CLI."""

    @app.command("api")
    def api(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        database_url: Annotated[
            str | None,
            typer.Option("--database-url", help="Default: $EVALSUITE_DATABASE_URL."),
        ] = None,
        workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    ) -> None:
        """Serve /v1 (OpenAPI at /docs); the database must be migrated ('evalsuite db upgrade')."""
        import os

        import uvicorn

        from evalsuite.api.serve import PROTOCOL
        from evalsuite.settings import Settings, environment_for, get_settings
        from evalsuite.store import migrate
        from evalsuite.store.errors import StoreError

        settings = Settings.from_env(database_url)
        if migrate.current(settings.database_url) != migrate.head():
            raise StoreError(
                "the database is not at the newest revision: run 'evalsuite db upgrade' first"
            )
        # the app (``create_app`` in uvicorn's workers) and its connections' protocol
        # (evalsuite.api.serve: header timeout, connection cap) read their settings again
        os.environ.update(environment_for(database_url=settings.database_url))
        get_settings.cache_clear()
        uvicorn.run(
            "evalsuite.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            http=PROTOCOL,  # header timeout, connection cap
        )
