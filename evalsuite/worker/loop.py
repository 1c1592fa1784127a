"""The queue consumer: claim a job, evaluate its checkpoint, report, repeat.

One worker per GPU (or GPU group, with tensor parallelism). Jobs run in a child process
group while the worker heartbeats the lease: by default one long-lived host (``host``) that
keeps its imports and its engine from job to job, swapping each checkpoint's weights into
the running engine; with ``reuse_engine=False`` a fresh process and engine per job
(``job``). The results are uploaded with ``complete`` (idempotent, so an upload retried
after a lost answer stores one copy), a failure with ``fail`` and its reason.
A worker that dies loses nothing: its lease expires and another worker claims the job again,
resuming from the answers cached in the results directory when it runs on the same disk.
SIGTERM (or Ctrl-C) stops the current job and hands it back to the queue at once.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalsuite.base_epoch import BASE_URI
from evalsuite.client import ApiClient, ApiError
from evalsuite.errors import EvalsuiteError
from evalsuite.evaluation.options import JobOptions
from evalsuite.evaluation.runner import EvalOptions
from evalsuite.integrations.trackers import JobTracking
from evalsuite.results_schema import problems
from evalsuite.worker.host import HostedJob, JobHost
from evalsuite.worker.job import JobOutcome, JobProcess

# how often the worker looks at a running job (its end, a stop request)
_STEP_S = 0.2


class JobOptionError(EvalsuiteError):
    """The job cannot be run as given: options this worker cannot use, or no base model."""


@dataclass
class WorkerSettings:
    """How this worker evaluates; a job's own ``options`` override the evaluation fields."""

    work_dir: Path
    worker_id: str = field(default_factory=lambda: default_worker_id())
    engine: str = "auto"
    materialize: str = "merged"
    dtype: str | None = None
    data_dir: Path | None = None
    task_dirs: list[Path] = field(default_factory=list)
    lease_s: float = 300.0
    poll_s: float = 5.0
    upload_tries: int = 8
    reuse_engine: bool = True
    tensor_parallel_size: int = 1
    trackers: list[str] = field(default_factory=list)  # mlflow, wandb: each finished job's scores
    # HumanEval+ in the sandbox's basic mode where the jail cannot start (--allow-basic-sandbox)
    allow_basic_sandbox: bool = False


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def job_options(claim: dict[str, Any]) -> JobOptions:
    """The claim's options, checked again here: the API checks them at registration, but a
    job may have been stored before that check, or by a service of another version."""
    try:
        return JobOptions.model_validate(claim.get("options") or {})
    except ValidationError as e:
        raise JobOptionError(
            f"job {claim['id']} has options this worker cannot use ({problems(e.errors())}); it "
            f"understands {', '.join(JobOptions.model_fields)}: upgrade the worker or fix the "
            "options where the job was made"
        ) from None


def eval_options(claim: dict[str, Any], settings: WorkerSettings) -> EvalOptions:
    """The runner's options for a claimed job: the worker's settings, then the job's."""
    options = job_options(claim)
    base = claim.get("base_model_path")
    if not base:
        raise JobOptionError(
            f"job {claim['id']}: run {claim.get('run')!r} has no base_model_path, so no worker "
            f"can find its base model {claim.get('base_model')!r}; give the run's base model a "
            "path (a new run: 'evalsuite submit --base-model-path DIR'; an existing one: "
            "POST /v1/runs again with its fields and base_model_path), then POST "
            f"/v1/jobs/{claim['id']}/retry"
        )
    from evalsuite.models import resolve_base  # a directory, or a catalog name (fetched once)

    uri = claim["checkpoint_uri"]
    opts = EvalOptions(
        base=resolve_base(base, strict=False),
        adapter=None if uri == BASE_URI else Path(uri),  # the base as epoch 0: no adapter
        out=settings.work_dir / f"job-{claim['id']}",
        suite=claim["suite"],
        engine=settings.engine,
        materialize=settings.materialize,
        dtype=settings.dtype,
        data_dir=settings.data_dir,
        task_dirs=list(settings.task_dirs),
        progress=False,
        tensor_parallel_size=settings.tensor_parallel_size,
        stall_s=settings.lease_s,
        allow_basic_sandbox=settings.allow_basic_sandbox,  # the worker's, never the job's
    )
    # each JobOptions field is the EvalOptions field of the same name
    return replace(opts, **options.overrides())


class Worker:
    """Claims and runs jobs until told to stop; ``log`` receives one line per event."""

    def __init__(
        self,
        client: ApiClient,
        settings: WorkerSettings,
        log: Callable[[str], None] = print,
    ):
        self.client = client
        self.settings = settings
        self.log = log
        self.stopping = threading.Event()
        self.host = JobHost(stall_s=settings.lease_s) if settings.reuse_engine else None
        self.tracking = JobTracking(client, settings.trackers, log) if settings.trackers else None

    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        """SIGTERM/SIGINT: stop the current job, hand it back, claim nothing more."""
        if not self.stopping.is_set():
            self.log("stopping: the current job goes back to the queue")
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, once: bool = False, max_jobs: int | None = None) -> int:
        """Work until stopped (or, with ``once``, until the queue is empty); jobs finished."""
        done = 0
        while not self.stopping.is_set() and (max_jobs is None or done < max_jobs):
            claim = self._claim()
            if claim is None:
                if once:
                    break
                self.stopping.wait(self.settings.poll_s)
                continue
            done += self.run_job(claim)
        return done

    def close(self) -> None:
        """The host and its engine go with the worker."""
        if self.host is not None:
            self.host.close()

    def _claim(self) -> dict[str, Any] | None:
        try:
            return self.client.claim(self.settings.worker_id, self.settings.lease_s)
        except ApiError as e:
            if e.status is not None and e.status < 500 and e.status != 429:
                raise  # a wrong token or URL does not fix itself
            self.log(f"claim failed ({e}); retrying in {self.settings.poll_s:g} s")
            return None

    def run_job(self, claim: dict[str, Any]) -> bool:
        """Run one claimed job to its end; True when its results were accepted."""
        job_id = claim["id"]
        self.log(
            f"job {job_id}: run {claim.get('run')} epoch {claim.get('epoch')} "
            f"suite {claim['suite']} ({claim['checkpoint_uri']})"
        )
        try:
            opts = eval_options(claim, self.settings)
        except EvalsuiteError as e:
            return self._report_failure(job_id, str(e))
        opts = replace(opts, queued_at=time.time())
        sha = claim.get("checkpoint_sha256")
        job = self.host.start(opts, sha) if self.host else JobProcess(opts, expected_sha256=sha)
        if not self._watch(job_id, job):
            return False
        outcome = job.outcome()
        if not outcome.ok:
            return self._report_failure(job_id, outcome.error or "unknown failure")
        accepted = self._upload(job_id, outcome)
        if accepted and self.tracking is not None:
            assert outcome.results is not None
            self.tracking.log(claim, outcome.results)
        return accepted

    def _watch(self, job_id: int, job: JobProcess | HostedJob) -> bool:
        """Heartbeat while the job runs; False if it was stopped (lease lost or SIGTERM).

        The job is waited on in short steps, so its end is seen at once (a swapped-in job
        takes seconds; sleeping a whole heartbeat interval would add up to 30 s to each) and
        a stop request within ``_STEP_S``."""
        interval = max(0.2, min(self.settings.lease_s / 3, 30.0))
        next_beat = time.monotonic() + interval
        while True:
            job.wait(_STEP_S)
            if not job.running():
                break
            if self.stopping.is_set():
                job.stop()
                self._release(job_id)
                return False
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            try:
                self.client.heartbeat(job_id, self.settings.worker_id, self.settings.lease_s)
            except ApiError as e:
                if e.status == 409:  # another worker owns it now: ours is a duplicate
                    self.log(f"job {job_id}: lease lost ({e}); stopping it here")
                    job.stop()
                    return False
                self.log(f"job {job_id}: heartbeat failed ({e}); the job goes on")
        job.wait()
        return True

    def _release(self, job_id: int) -> None:
        try:
            self.client.release(job_id, self.settings.worker_id)
            self.log(f"job {job_id}: handed back to the queue")
        except ApiError as e:
            self.log(f"job {job_id}: could not hand it back ({e}); its lease will expire")

    def _report_failure(self, job_id: int, error: str) -> bool:
        self.log(f"job {job_id}: failed: {error.splitlines()[0] if error else error}")
        self._with_retries(
            f"job {job_id}: reporting the failure",
            lambda: self.client.fail(job_id, self.settings.worker_id, error[-20000:]),
        )
        return False

    def _upload(self, job_id: int, outcome: JobOutcome) -> bool:
        """Send the results; when the service refuses them for good (a 4xx other than a lost
        lease: too large, a NaN metric, a schema an older service does not know), the job
        fails at once with the service's reason, instead of sitting RUNNING until its lease
        ends and then failing with no reason at all."""
        assert outcome.results is not None
        n_samples = sum(len(rows) for rows in (outcome.samples or {}).values())
        started = time.perf_counter()
        try:
            job = self._with_retries(
                f"job {job_id}: uploading results",
                lambda: self.client.complete(
                    job_id, self.settings.worker_id, outcome.results, outcome.samples
                ),
                raise_refused=True,
            )
        except ApiError as e:
            if e.status == 409:  # the job is no longer ours: its new holder reports it
                self.log(f"job {job_id}: results not taken, the lease was lost ({e})")
                return False
            return self._report_failure(job_id, f"the service refused the results: {e}")
        if job is None:
            return False
        took = time.perf_counter() - started
        self.log(f"job {job_id}: finished, {n_samples} samples uploaded in {took:.2f} s")
        return True

    def _with_retries(self, what: str, call: Callable[[], Any], raise_refused: bool = False) -> Any:
        """The service may be restarting: retry server and connection errors with backoff.

        A refusal (a 4xx other than 429) is not retried: it is logged and None returned,
        or raised with ``raise_refused`` so the caller can act on the reason."""
        delay = 1.0
        for attempt in range(1, self.settings.upload_tries + 1):
            try:
                return call()
            except ApiError as e:
                retryable = e.status is None or e.status >= 500 or e.status == 429
                if not retryable and raise_refused:
                    raise
                if not retryable or attempt == self.settings.upload_tries:
                    self.log(f"{what} failed: {e}")
                    return None
                self.log(f"{what} failed ({e}); retry {attempt} in {delay:g} s")
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
        return None


def sandbox_status(allow_basic: bool) -> str:
    """One line at start: whether HumanEval+ jobs can be scored here, and in which sandbox.

    A worker whose jail cannot start still serves other jobs; its HumanEval+ jobs fail with
    the reason (before generating) unless basic mode is allowed, so it is said at once."""
    from evalsuite.scoring.code.isolation import BasicSandboxRefused, check_jail

    try:
        info = check_jail(allow_basic)
    except BasicSandboxRefused as e:
        return f"warning: HumanEval+ jobs will fail here: {e}"
    if info.get("namespaces"):
        return "sandbox: HumanEval+ programs run in the bubblewrap jail"
    return (
        f"warning: HumanEval+ programs run in the sandbox's basic mode (allowed), as the jail "
        f"cannot start: {info.get('why_not')}"
    )


def run_worker(
    api: str,
    token: str | None,
    settings: WorkerSettings,
    once: bool = False,
    max_jobs: int | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """``evalsuite worker``: returns the number of jobs finished."""
    with ApiClient(api, token=token) as client:
        health = client.health()
        log(
            f"worker {settings.worker_id} on {api} ({health.get('database')}, "
            f"{health.get('pending_jobs')} pending); results under {settings.work_dir}"
        )
        log(sandbox_status(settings.allow_basic_sandbox))
        worker = Worker(client, settings, log)
        worker.install_signal_handlers()
        started = time.monotonic()
        try:
            done = worker.run(once=once, max_jobs=max_jobs)
        finally:
            worker.close()
        elapsed = time.monotonic() - started
        log(f"worker {settings.worker_id}: {done} job(s) finished in {elapsed:.0f} s")
        return done
