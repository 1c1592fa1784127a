"""The job queue: claim with a lease, heartbeat, complete, fail, release, retry.

Every operation is one write transaction. On PostgreSQL a claim locks one PENDING row with
``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait for or take the same job; on
SQLite the whole transaction holds the database write lock (``BEGIN IMMEDIATE``), which
serialises claims. Leases that ran out are handed back to PENDING on every claim.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evalsuite.results_schema import ResultsFile, SampleRow
from evalsuite.store.errors import Conflict, NotFound
from evalsuite.store.ingest import store_results
from evalsuite.store.models import Checkpoint, Job, JobStatus, Run, utcnow


def _locked(session: Session, job_id: int) -> Job:
    """The job, its row locked for the rest of the transaction (PostgreSQL)."""
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update(of=Job)
        .execution_options(populate_existing=True)
    )
    if job is None:
        raise NotFound(f"no job with id {job_id}; list jobs with GET /v1/jobs")
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}; list jobs with GET /v1/jobs")
    return job


def list_jobs(session: Session, status: str | None, run: str | None, limit: int) -> list[Job]:
    query = select(Job).order_by(Job.id).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if run:
        query = query.join(Job.checkpoint).join(Checkpoint.run).where(Run.name == run)
    return list(session.scalars(query))


def expire_leases(session: Session, now: datetime) -> int:
    """RUNNING jobs whose lease ran out: back to PENDING, or FAILED when attempts are used up.

    A job back in PENDING keeps ``worker_id``, the worker whose lease ran out: its results
    are still accepted by :func:`complete` until another worker claims the job.
    """
    stale = select(Job.id).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    if session.get_bind().dialect.name == "postgresql":
        stale = stale.with_for_update(skip_locked=True)
    ids = list(session.scalars(stale))
    if not ids:
        return 0
    for exhausted, status in ((False, JobStatus.PENDING), (True, JobStatus.FAILED)):
        attempts_left = (
            Job.attempts >= Job.max_attempts if exhausted else Job.attempts < Job.max_attempts
        )
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), attempts_left)
            .values(
                status=status,
                worker_id=Job.worker_id if not exhausted else None,
                lease_expires_at=None,
                error=Job.error if not exhausted else "lease expired on the last attempt",
                finished_at=now if exhausted else None,
            )
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def claim(session: Session, worker_id: str, lease_s: float) -> Job | None:
    """The oldest PENDING job, now RUNNING under ``worker_id`` until the lease runs out."""
    now = utcnow()
    expire_leases(session, now)
    query = select(Job).where(Job.status == JobStatus.PENDING).order_by(Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Job)
    job = session.scalar(query.execution_options(populate_existing=True))
    if job is None:
        return None
    job.status = JobStatus.RUNNING
    job.worker_id = worker_id
    job.attempts += 1
    job.lease_expires_at = now + timedelta(seconds=lease_s)
    job.started_at = now
    job.error = None
    return job


def _not_yours(job: Job, worker_id: str) -> Conflict:
    if job.status in (JobStatus.FINISHED, JobStatus.FAILED):
        return Conflict(f"job {job.id} is already {job.status}; stop working on it")
    if job.status == JobStatus.PENDING and job.worker_id == worker_id:
        return Conflict(
            f"job {job.id}'s lease ran out and it is back in the queue (PENDING); stop "
            "working on it (its results are still accepted until another worker claims it)"
        )
    if job.status == JobStatus.PENDING:
        return Conflict(
            f"job {job.id} is PENDING and not held by {worker_id!r} (it was never claimed by "
            "it, or was failed or released since): claim a job with POST /v1/jobs/claim "
            "before reporting on it"
        )
    holder = f"worker {job.worker_id!r}" if job.worker_id else "no worker"
    return Conflict(
        f"job {job.id} is {job.status} and held by {holder}, not {worker_id!r}: the lease "
        "ran out and the job went back to the queue; stop working on it"
    )


def heartbeat(session: Session, job_id: int, worker_id: str, lease_s: float) -> Job:
    """Extend the lease, only for the worker that holds it."""
    job = _locked(session, job_id)
    if job.status != JobStatus.RUNNING or job.worker_id != worker_id:
        raise _not_yours(job, worker_id)
    job.lease_expires_at = utcnow() + timedelta(seconds=lease_s)
    return job


def complete(
    session: Session,
    job_id: int,
    worker_id: str,
    results: ResultsFile,
    samples: dict[str, list[SampleRow]],
) -> Job:
    """Store the results and finish the job; a FINISHED job stays as it is (idempotent).

    Only the worker that claimed the job may complete it: the one holding it (RUNNING), or
    the one whose lease ran out while nobody has claimed the job since (PENDING, the
    ``worker_id`` kept by :func:`expire_leases`), since its results are as good as anyone's.
    A job nobody claimed, or another worker now holds, is not the caller's to complete.
    """
    job = _locked(session, job_id)
    if job.status == JobStatus.FINISHED:
        return job
    if job.status == JobStatus.FAILED:
        raise Conflict(
            f"job {job.id} is FAILED ({job.error}); POST /v1/jobs/{job.id}/retry to run it again"
        )
    if job.worker_id != worker_id:
        raise _not_yours(job, worker_id)
    store_results(session, job, results, samples)
    now = utcnow()
    job.status = JobStatus.FINISHED
    job.worker_id = worker_id
    job.lease_expires_at = None
    job.finished_at = now
    job.error = None
    return job


def fail(session: Session, job_id: int, worker_id: str, error: str) -> Job:
    """Record why the attempt failed: back to PENDING while attempts remain, else FAILED."""
    job = _locked(session, job_id)
    if job.status != JobStatus.RUNNING or job.worker_id != worker_id:
        raise _not_yours(job, worker_id)
    job.error = error
    job.worker_id = None
    job.lease_expires_at = None
    if job.attempts >= job.max_attempts:
        job.status = JobStatus.FAILED
        job.finished_at = utcnow()
    else:
        job.status = JobStatus.PENDING
    return job


def release(session: Session, job_id: int, worker_id: str) -> Job:
    """The holder gives the job back untried (a worker told to stop): PENDING at once.

    The attempt is not counted: the job did not fail, its worker was shut down.
    """
    job = _locked(session, job_id)
    if job.status != JobStatus.RUNNING or job.worker_id != worker_id:
        raise _not_yours(job, worker_id)
    job.status = JobStatus.PENDING
    job.worker_id = None
    job.lease_expires_at = None
    job.attempts = max(0, job.attempts - 1)
    return job


def retry(session: Session, job_id: int) -> Job:
    """A FAILED job back to PENDING with its attempts reset."""
    job = _locked(session, job_id)
    if job.status != JobStatus.FAILED:
        raise Conflict(f"job {job.id} is {job.status}; only FAILED jobs can be retried")
    job.status = JobStatus.PENDING
    job.worker_id = None
    job.attempts = 0
    job.finished_at = None
    return job


def pending_count(session: Session) -> int:
    return session.scalar(select(func.count()).where(Job.status == JobStatus.PENDING)) or 0
