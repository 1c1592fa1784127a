"""``evalsuite dashboard``: run the Streamlit app (headless) against a results API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.settings import DEFAULT_API_URL, environment_for, get_settings

APP_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"


def streamlit_command(api: str, port: int, address: str) -> list[str]:
    """``streamlit run`` on the packaged entry script: headless, no usage stats, no file
    watcher (an installed package does not change), the API URL after ``--``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SCRIPT),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={address}",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=viewer",
        "--",
        "--api",
        api,
    ]


def dashboard(
    api: Annotated[
        str | None,
        typer.Option(help=f"Results API URL (default: EVALSUITE_API_URL or {DEFAULT_API_URL})."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port the dashboard listens on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for all).")] = "127.0.0.1",
) -> None:
    """Serve the dashboard (leaderboard, curves, checkpoints, queue) over the results API."""
    url = api or get_settings().client_api_url
    typer.echo(f"dashboard on http://{address}:{port} reading {url} (Ctrl-C stops it)")
    env = {**os.environ, **environment_for(api_url=url)}
    command = streamlit_command(url, port, address)
    # become streamlit (no child left behind): Ctrl-C and SIGTERM reach the server directly
    os.execve(command[0], command, env)


def register(app: typer.Typer) -> None:
    """Mount ``dashboard`` on the root command."""
    app.command("dashboard")(dashboard)
