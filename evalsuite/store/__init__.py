"""The results store: SQLAlchemy models, Alembic migrations, the job queue and the queries.

``Database`` opens it (``$EVALSUITE_DATABASE_URL``, default a SQLite file in the user's data
directory); ``migrate.upgrade`` creates or updates its tables.
"""

from evalsuite.store.db import Database, database_url

__all__ = ["Database", "database_url"]
