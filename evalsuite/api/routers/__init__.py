"""Every router of ``/v1``, registered in one place: add a module name to ``ROUTERS``."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

ROUTERS = ["health", "runs", "checkpoints", "jobs", "results", "gate", "compare"]


def include_routers(app: FastAPI) -> None:
    """Mount each module's ``router`` under ``/v1``."""
    for name in ROUTERS:
        module = importlib.import_module(f"evalsuite.api.routers.{name}")
        app.include_router(module.router, prefix="/v1")
