"""Alembic environment and revisions of the store (shipped in the package for ``db upgrade``)."""
