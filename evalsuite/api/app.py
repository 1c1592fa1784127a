"""The FastAPI application factory: ``create_app(settings)``.

Routers are listed once, in ``evalsuite.api.routers.ROUTERS``; errors of the store map to
4xx codes with a JSON ``{"detail": "..."}`` that says what was wrong. Tokens and the limits
on request bodies are enforced in front of FastAPI, by ``evalsuite.api.guard``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from evalsuite import __version__
from evalsuite.api.guard import RequestGuard
from evalsuite.api.routers import include_routers
from evalsuite.results_schema import problems
from evalsuite.settings import Settings
from evalsuite.store import Database
from evalsuite.store.errors import BadInput, Conflict, NotFound

STATUS = {NotFound: 404, Conflict: 409, BadInput: 422}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"invalid request: {problems(list(exc.errors()))}"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    for error_type, status in STATUS.items():

        async def _store(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(error_type, _store)

    # last lines of defence: a value the database refuses is the client's, not a server fault
    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        reason = str(exc.orig).splitlines()[0] if exc.orig else "constraint violated"
        return JSONResponse(
            {"detail": f"conflicts with what is stored ({reason}); re-read and retry"},
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        reason = str(exc.orig).splitlines()[0] if exc.orig else "value out of range"
        return JSONResponse({"detail": f"the database refused a value: {reason}"}, 422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API bound to the database of ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.db.dispose()

    app = FastAPI(
        title="evalsuite results service",
        version=__version__,
        description="Runs, checkpoints, the evaluation queue, scores and the paper's tables. "
        "Contract: docs/api.md.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    _install_error_handlers(app)
    include_routers(app)
    # in front of the app: FastAPI's body parsing and the handlers all run after it
    app.add_middleware(RequestGuard, settings=settings, routes=app.routes)
    return app
