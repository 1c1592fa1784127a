"""Runs and registering their checkpoints (which enqueues the jobs).

A scoped token (``runs=`` in the token file) writes only runs inside its scope: 403 before
anything is stored. Each checkpoint records the label of the token that registered it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from evalsuite.api import convert
from evalsuite.api.auth import require_run
from evalsuite.api.deps import Caller, ReadSession, SettingsDep, WriteSession
from evalsuite.api.schemas import CheckpointIn, Domain, Registered, Run, RunDetail, RunIn
from evalsuite.store import catalog

router = APIRouter(tags=["runs"])
RunName = Annotated[str, Path(min_length=1, max_length=512)]


@router.post("/runs", response_model=Run, status_code=201)
def register_run(body: RunIn, session: WriteSession, caller: Caller, response: Response) -> Run:
    """201 with the new run; the same name and fields again: 200; other fields: 409."""
    require_run(caller, body.name)
    run, created = catalog.register_run(session, body.model_dump())
    if not created:
        response.status_code = 200
    return convert.run(run)


@router.get("/runs", response_model=list[Run])
def list_runs(
    session: ReadSession,
    domain: Domain | None = None,
    base_model: Annotated[str | None, Query(max_length=512)] = None,
    method: Annotated[str | None, Query(max_length=64)] = None,
) -> list[Run]:
    return [convert.run(r) for r in catalog.list_runs(session, domain, base_model, method)]


@router.get("/runs/{run}", response_model=RunDetail)
def get_run(run: RunName, session: ReadSession) -> RunDetail:
    row = catalog.get_run(session, run)
    return RunDetail(
        **convert.run(row).model_dump(),
        checkpoints=[convert.checkpoint(c) for c in row.checkpoints],
    )


@router.post("/runs/{run}/checkpoints", response_model=Registered, status_code=201)
def register_checkpoint(
    run: RunName,
    body: CheckpointIn,
    session: WriteSession,
    settings: SettingsDep,
    caller: Caller,
    response: Response,
) -> Registered:
    """201 with the checkpoint and one PENDING job per suite; the same sha256 again: 200.

    ``options`` were checked against ``JobOptions`` (422 otherwise); the jobs keep only the
    ones given, so an unset option leaves the worker's own setting in force. The same
    sha256 again keeps the first registration's ``registered_by``."""
    require_run(caller, run)
    fields = {**body.model_dump(), "options": body.options.overrides()}
    done = catalog.register_checkpoint(
        session, run, fields, settings.max_attempts, registered_by=caller.label
    )
    if not done.created:
        response.status_code = 200
    return Registered(
        checkpoint=convert.checkpoint(done.checkpoint), jobs=[convert.job(j) for j in done.jobs]
    )
