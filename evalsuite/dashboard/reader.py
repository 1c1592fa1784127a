"""Where the dashboard finds the results service; it reads through ``evalsuite.client``."""

from __future__ import annotations

import os

DEFAULT_API_URL = "http://127.0.0.1:8000"


def api_url_from_env() -> str:
    """``EVALSUITE_API_URL`` or the API's default local address."""
    return os.environ.get("EVALSUITE_API_URL") or DEFAULT_API_URL
