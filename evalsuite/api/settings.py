"""The API's settings are the package's: ``evalsuite.settings``.

Kept only so the importers not yet moved (``api/app.py`` and a few tests) keep working;
import from ``evalsuite.settings`` in new code.
"""

from __future__ import annotations

from evalsuite.settings import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    JSON_DEPTH_CEILING,
    Settings,
    SettingsError,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "JSON_DEPTH_CEILING",
    "Settings",
    "SettingsError",
]
