"""A small catalog of real base models, fetched offline-friendly into the cache.

``resolve_base(value)`` turns a ``--base`` (a directory or a catalog name) into a directory;
``ensure_model(name)`` fetches a catalog model once. See ``catalog.py`` for the names.
"""

from evalsuite.models.catalog import CATALOG, CatalogModel, ModelError, lookup
from evalsuite.models.store import ensure_model, model_dir, resolve_base, verify

__all__ = [
    "CATALOG",
    "CatalogModel",
    "ModelError",
    "ensure_model",
    "lookup",
    "model_dir",
    "resolve_base",
    "verify",
]
