"""The queue over HTTP: list, claim (204 when empty), heartbeat, complete, fail, release, retry.

A worker's calls take a ``WorkerSession``: the queue hands a worker any run's job, so they
need an unscoped token. Retry is a person's call and needs only the job's run in scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from evalsuite.api import convert
from evalsuite.api.auth import require_run
from evalsuite.api.deps import Caller, ReadSession, WorkerSession, WriteSession
from evalsuite.api.schemas import (
    INT64,
    ClaimIn,
    CompleteIn,
    FailIn,
    HeartbeatIn,
    Job,
    JobClaim,
    ReleaseIn,
    Status,
)
from evalsuite.store import queue

router = APIRouter(tags=["jobs"])
JobId = Annotated[int, Path(ge=1, le=INT64)]


@router.get("/jobs", response_model=list[Job])
def list_jobs(
    session: ReadSession,
    status: Status | None = None,
    run: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[Job]:
    return [convert.job(j) for j in queue.list_jobs(session, status, run, limit)]


@router.get("/jobs/{job_id}", response_model=Job)
def get_job(job_id: JobId, session: ReadSession) -> Job:
    return convert.job(queue.get_job(session, job_id))


@router.post(
    "/jobs/claim",
    response_model=JobClaim,
    responses={204: {"description": "nothing is pending"}},
)
def claim(body: ClaimIn, session: WorkerSession) -> JobClaim | Response:
    job = queue.claim(session, body.worker_id, body.lease_s)
    if job is None:
        return Response(status_code=204)
    return convert.job_claim(job)


@router.post("/jobs/{job_id}/heartbeat", response_model=Job, responses={409: {}})
def heartbeat(job_id: JobId, body: HeartbeatIn, session: WorkerSession) -> Job:
    return convert.job(queue.heartbeat(session, job_id, body.worker_id, body.lease_s))


@router.post("/jobs/{job_id}/complete", response_model=Job, responses={409: {}})
def complete(job_id: JobId, body: CompleteIn, session: WorkerSession) -> Job:
    job = queue.complete(session, job_id, body.worker_id, body.results, body.samples)
    return convert.job(job)


@router.post("/jobs/{job_id}/fail", response_model=Job, responses={409: {}})
def fail(job_id: JobId, body: FailIn, session: WorkerSession) -> Job:
    return convert.job(queue.fail(session, job_id, body.worker_id, body.error))


@router.post("/jobs/{job_id}/release", response_model=Job, responses={409: {}})
def release(job_id: JobId, body: ReleaseIn, session: WorkerSession) -> Job:
    return convert.job(queue.release(session, job_id, body.worker_id))


@router.post("/jobs/{job_id}/retry", response_model=Job, responses={409: {}})
def retry(job_id: JobId, session: WriteSession, caller: Caller) -> Job:
    require_run(caller, queue.get_job(session, job_id).checkpoint.run.name)
    return convert.job(queue.retry(session, job_id))
