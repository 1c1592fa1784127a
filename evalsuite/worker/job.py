"""One queue job's evaluation, run by the runner in a child process group.

The worker must stay responsive while a job runs (it heartbeats the lease and answers
SIGTERM), and a stopped or lost job must leave nothing behind: no engine holding GPU memory,
no grading pool, no sandbox. So the runner lives in a child that starts its own process
group; stopping the job kills the whole group, and if the worker itself dies (even by
``kill -9``) the kernel tells the child, which takes its group down with it.

The results directory is the unit of truth and survives the child: a job retried on the same
machine resumes from the answers already cached there.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalsuite.engines.process import describe_exit
from evalsuite.engines.slot import EngineSlot
from evalsuite.errors import EvalsuiteError
from evalsuite.evaluation.runner import EvalOptions
from evalsuite.results_schema import ResultsFile, SampleRow, problems

ERROR_FILE = "job_error.txt"
LOG_FILE = "job.log"
USER_ERROR, CRASH = 3, 4  # a job's exit codes besides 0


@dataclass
class JobOutcome:
    """What became of one job: results and samples to upload, or the reason it failed."""

    ok: bool
    results: dict[str, Any] | None = None
    samples: dict[str, list[dict[str, Any]]] | None = None
    error: str | None = None


def _take_group_down(signum: int, frame: object) -> None:
    """Parent died (PR_SET_PDEATHSIG) or we were told to stop: kill every process we started."""
    os.killpg(0, signal.SIGKILL)


class CheckpointChanged(EvalsuiteError):
    """The files at the checkpoint's URI are not the ones that were registered."""


def verify_checkpoint(path: Path, expected_sha256: str | None) -> None:
    """Refuse to score other weights under a registered checkpoint's name."""
    if not expected_sha256:
        return
    from evalsuite.adapters.loading import load

    found = load(path).sha256()
    if found != expected_sha256:
        raise CheckpointChanged(
            f"checkpoint {path} has content sha256 {found}, but it was registered with "
            f"{expected_sha256}; the files changed after registration: register the new "
            "files as a new checkpoint (evalsuite submit) instead of overwriting them"
        )


def verify_base(base: Path, expected_sha256: str | None) -> None:
    """The base registered as epoch 0 is identified by its fingerprint: refuse other weights
    found at the base model's path (the scores would be stored as the run's base)."""
    if not expected_sha256:
        return
    from evalsuite.evaluation.materialize import model_fingerprint

    found = model_fingerprint(Path(base))
    if found != expected_sha256:
        raise CheckpointChanged(
            f"the base model at {base} has fingerprint {found}, but the run's epoch 0 was "
            f"registered with {expected_sha256}; the base's files changed after registration"
        )


def become_job_group() -> None:
    """Lead a new process group that dies with the worker: SIGTERM (our own, or sent when
    the worker dies) kills every process the job started."""
    os.setsid()  # our own process group: the engine, grading pools and sandboxes join it
    signal.signal(signal.SIGTERM, _take_group_down)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the worker died before prctl took effect
        _take_group_down(signal.SIGTERM, None)


def prepare_out(out: Path) -> None:
    """A job's results directory before it runs: no stale verdict from an earlier try."""
    out.mkdir(parents=True, exist_ok=True)
    (out / ERROR_FILE).unlink(missing_ok=True)
    (out / "results.json").unlink(missing_ok=True)  # a stale one must not be uploaded


def log_to(out: Path) -> None:
    """This process's stdout and stderr go to the job's log from now on."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(out / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def run_here(opts: EvalOptions, expected_sha256: str | None, slot: EngineSlot | None = None) -> int:
    """Evaluate the job in this process; the exit code it stands for (0, user error, crash),
    with the reason written to ``ERROR_FILE`` when it is not 0."""
    from evalsuite.evaluation.runner import evaluate

    out = Path(opts.out)
    try:
        if opts.adapter is not None:
            verify_checkpoint(Path(opts.adapter), expected_sha256)
        else:  # the base as epoch 0 (evalsuite.base_epoch)
            verify_base(Path(opts.base), expected_sha256)
        evaluate(opts, slot)
    except EvalsuiteError as e:
        (out / ERROR_FILE).write_text(str(e))
        return USER_ERROR
    except BaseException as e:
        (out / ERROR_FILE).write_text(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        return CRASH
    return 0


def _child(opts: EvalOptions, expected_sha256: str | None) -> None:
    become_job_group()
    log_to(Path(opts.out))
    os._exit(run_here(opts, expected_sha256))


def stop_group(proc: BaseProcess, grace_s: float = 5.0) -> None:
    """SIGTERM to a job process's whole group, SIGKILL after ``grace_s``; then reap it."""
    pid = proc.pid
    if pid is None or proc.exitcode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while proc.is_alive() and time.monotonic() < deadline:
        proc.join(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    proc.join()


def outcome_of(code: int | None, out: Path) -> JobOutcome:
    """What to upload after a job ended with ``code`` (None: its process vanished), or why
    it failed, in one readable message."""
    error_file = out / ERROR_FILE
    if code == 0:
        return collect(out)
    if error_file.is_file():
        return JobOutcome(ok=False, error=error_file.read_text().strip())
    tail = _tail(out / LOG_FILE)
    return JobOutcome(ok=False, error=f"the evaluation process {describe_exit(code)}" + tail)


class JobProcess:
    """The runner on one checkpoint, in a child process group; poll it, stop it, read it."""

    def __init__(self, opts: EvalOptions, expected_sha256: str | None = None):
        self.opts = opts
        self.out = Path(opts.out)
        prepare_out(self.out)
        ctx = mp.get_context("spawn")  # no inherited locks or threads from the worker
        self._proc = ctx.Process(target=_child, args=(opts, expected_sha256), name="evalsuite-job")
        self._proc.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.is_alive()

    def wait(self, timeout: float | None = None) -> int | None:
        self._proc.join(timeout)
        return self._proc.exitcode

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the job and everything it started; the results directory stays for a resume."""
        stop_group(self._proc, grace_s)

    def outcome(self) -> JobOutcome:
        """After the child exited: what to upload, or why it failed (one readable message)."""
        return outcome_of(self._proc.exitcode, self.out)


def collect(out: Path) -> JobOutcome:
    """``results.json`` and each task's ``samples_<task>.jsonl`` rows, as the API takes them.

    Checked against the models the API validates with first: a file the API would refuse
    fails the job here with the reason, instead of an upload answered 422 after the run.
    """
    results_file = out / "results.json"
    if not results_file.is_file():
        return JobOutcome(ok=False, error=f"the evaluation ended without writing {results_file}")
    results = json.loads(results_file.read_text())
    samples: dict[str, list[dict[str, Any]]] = {}
    try:
        for task in ResultsFile.model_validate(results).tasks:
            path = out / f"samples_{task}.jsonl"
            samples[task] = [json.loads(line) for line in path.read_text().splitlines() if line]
            for row in samples[task]:
                SampleRow.model_validate(row)
    except ValidationError as e:
        return JobOutcome(
            ok=False,
            error=f"the evaluation wrote results the service would refuse ({e.title}: "
            f"{problems(e.errors())})",
        )
    return JobOutcome(ok=True, results=results, samples=samples)


def _tail(log: Path, lines: int = 5) -> str:
    if not log.is_file():
        return ""
    last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return ("; last output: " + " | ".join(last[-lines:])) if last else ""
