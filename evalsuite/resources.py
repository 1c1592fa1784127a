"""Where the task definitions and prompt templates live (inside the package when installed).

``evalsuite/tasks`` and ``evalsuite/prompts`` are symlinks to the top-level ``tasks/`` and
``prompts/`` of the source tree; a wheel build copies the files into the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def tasks_dir() -> Path:
    return PACKAGE_DIR / "tasks"


def prompts_dir() -> Path:
    return PACKAGE_DIR / "prompts"
