"""Reading results: leaderboard (BEST/LAST per run), the paper's tables, curves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from evalsuite.api.deps import ReadSession
from evalsuite.api.schemas import INT32, Curve, CurvePoint, Domain, LeaderboardRow, TableData
from evalsuite.store import paper_tables, queries

router = APIRouter(tags=["results"])
Task = Annotated[str, Query(min_length=1, max_length=256)]


@router.get("/leaderboard", response_model=list[LeaderboardRow])
def leaderboard(
    session: ReadSession,
    task: Task,
    metric: Task,
    domain: Domain | None = None,
    base_model: Annotated[str | None, Query(max_length=512)] = None,
) -> list[LeaderboardRow]:
    rows = queries.leaderboard(session, task, metric, domain, base_model)
    return [
        LeaderboardRow(
            run=r.run,
            method=r.method,
            r=r.r,
            k=r.k,
            base_model=r.base_model,
            best=r.best,
            best_epoch=r.best_epoch,
            last=r.last,
            last_epoch=r.last_epoch,
            n_epochs=r.n_epochs,
        )
        for r in rows
    ]


@router.get("/tables/{domain}", response_model=TableData)
def table(
    domain: Domain,
    session: ReadSession,
    base_model: Annotated[str | None, Query(max_length=512)] = None,
    method: Annotated[str | None, Query(max_length=64)] = None,
    r: Annotated[int | None, Query(ge=0, le=INT32)] = None,
) -> TableData:
    return TableData(**paper_tables.table_data(session, domain, base_model, method, r))


@router.get("/curves", response_model=list[Curve])
def curves(
    session: ReadSession,
    runs: Annotated[str, Query(min_length=1, max_length=20_000, description="a,b,c")],
    task: Task,
    metric: Task,
) -> list[Curve]:
    names = list(dict.fromkeys(n.strip() for n in runs.split(",") if n.strip()))
    found = queries.curves(session, names, task, metric)
    return [
        Curve(
            run=name,
            best_epoch=queries.best_epoch(points),
            points=[CurvePoint(**vars(p)) for p in points],
        )
        for name, points in found.items()
    ]
