"""Alembic's entry point: migrate the database the store's URL (or a given connection) names."""

from __future__ import annotations

from alembic import context

from evalsuite.store.db import make_engine
from evalsuite.store.models import Base

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()
