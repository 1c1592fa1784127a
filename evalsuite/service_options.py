"""The ``--api`` / ``--token`` options every command that talks to the results service shares
(``worker``, ``submit``, ``watch``, ``export``), and how they fall back to the settings."""

from __future__ import annotations

from typing import Annotated

import typer

from evalsuite.settings import DEFAULT_API_URL, get_settings

ApiOption = Annotated[
    str | None,
    typer.Option(
        help=f"The results service (default: $EVALSUITE_API_URL, else {DEFAULT_API_URL})."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(help="Bearer token for writes (default: $EVALSUITE_API_TOKEN)."),
]


def service_endpoint(api: str | None, token: str | None) -> tuple[str, str | None]:
    """The options, else the settings (``EVALSUITE_API_URL``, ``EVALSUITE_API_TOKEN``)."""
    settings = get_settings()
    return api or settings.client_api_url, token or settings.api_token
