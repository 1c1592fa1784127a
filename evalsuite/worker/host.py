"""A worker's long-lived job process: imports paid once, one engine kept across jobs.

With a fresh process per job (``JobProcess``) every job pays for a new interpreter, the
imports of torch, vLLM and lm-eval, and a new engine: on a GPU with an 8B base a minute or
more per epoch checkpoint. The host is the same child process group, kept: it takes one job
at a time over a pipe, runs the runner with an ``EngineSlot`` that keeps the engine, and
answers with the job's exit code. Isolation stays as it was:

- the host leads its own process group and dies with the worker (PR_SET_PDEATHSIG);
- stopping a job (SIGTERM to the worker, a lost lease) kills the whole group, engine
  included; the next job starts a new host;
- a host that dies mid-job (out of memory, a crash) fails that job with the reason, and the
  next job starts a new host; an engine that dies or hangs fails its job (the slot starts
  a fresh engine for the next one).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from multiprocessing.connection import Connection
from pathlib import Path

from evalsuite.engines.slot import EngineSlot
from evalsuite.evaluation.runner import EvalOptions
from evalsuite.worker.job import (
    JobOutcome,
    become_job_group,
    log_to,
    outcome_of,
    prepare_out,
    run_here,
    stop_group,
)


def _serve(conn: Connection, stall_s: float | None) -> None:
    become_job_group()
    slot = EngineSlot(keep=True, stall_s=stall_s, log=lambda line: print(line, flush=True))
    try:
        while True:
            try:
                command, *payload = conn.recv()
            except EOFError:
                break
            if command == "close":
                break
            opts, expected_sha256 = payload
            out = Path(opts.out)
            log_to(out)
            slot.redirect_output(str(out / "job.log"))
            conn.send(("done", run_here(opts, expected_sha256, slot)))
    finally:
        slot.close()


class JobHost:
    """The worker's side of the host: starts it on demand, hands it jobs, stops it."""

    def __init__(self, stall_s: float | None = None):
        self.stall_s = stall_s
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self.close()
        ctx = mp.get_context("spawn")  # no inherited locks or threads from the worker
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, self.stall_s), name="evalsuite-job-host"
        )
        self._proc.start()
        child.close()  # so a dead host reads as EOF here

    def start(self, opts: EvalOptions, expected_sha256: str | None = None) -> HostedJob:
        """Hand one job to the host (started first if needed)."""
        prepare_out(Path(opts.out))
        self._ensure_started()
        assert self._conn is not None
        try:
            self._conn.send(("job", opts, expected_sha256))
        except (BrokenPipeError, OSError):  # it died between the check and the send
            self.close()
            self._ensure_started()
            self._conn.send(("job", opts, expected_sha256))
        return HostedJob(self, Path(opts.out))

    def stop(self, grace_s: float = 5.0) -> None:
        """Kill the host's whole group (its engine too); the next job starts a new one."""
        if self._proc is not None:
            stop_group(self._proc, grace_s)
        self.close()

    def close(self) -> None:
        """Let the host close its engine and exit; kill it if it does not."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None and proc.is_alive() and conn is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close",))
            proc.join(60)
        if proc is not None and proc.is_alive():
            stop_group(proc, 1.0)
        if conn is not None:
            conn.close()


class HostedJob:
    """One job running in the host: the same calls the worker makes of a ``JobProcess``."""

    def __init__(self, host: JobHost, out: Path):
        self.host = host
        self.out = out
        self._proc = host._proc
        self._conn = host._conn
        self._code: int | None = None
        self._ended = False

    def _check(self, timeout: float) -> bool:
        """True once the job ended: the host answered, or the host is gone."""
        if self._ended:
            return True
        assert self._conn is not None and self._proc is not None
        try:
            if self._conn.poll(timeout):
                _, self._code = self._conn.recv()
                self._ended = True
        except (EOFError, OSError):
            self._proc.join(10)
            self._ended = True
        if not self._ended and not self._proc.is_alive():
            self._ended = True
        return self._ended

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return not self._check(0)

    def wait(self, timeout: float | None = None) -> int | None:
        self._check(timeout if timeout is not None else 10**9)
        return self._code

    def stop(self, grace_s: float = 5.0) -> None:
        self.host.stop(grace_s)
        self._ended = True

    def outcome(self) -> JobOutcome:
        if self._code is not None:
            return outcome_of(self._code, self.out)
        assert self._proc is not None
        self._proc.join(10)
        self.host.close()  # the host died: the next job starts a new one
        return outcome_of(self._proc.exitcode, self.out)
