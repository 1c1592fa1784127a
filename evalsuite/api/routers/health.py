"""``GET /v1/health``: is the service up, which database, how much is queued."""

from __future__ import annotations

from fastapi import APIRouter, Request

from evalsuite import __version__
from evalsuite.api.deps import ReadSession
from evalsuite.api.schemas import Health
from evalsuite.store.queue import pending_count

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(request: Request, session: ReadSession) -> Health:
    return Health(
        status="ok",
        database=request.app.state.db.backend,
        version=__version__,
        pending_jobs=pending_count(session),
    )
