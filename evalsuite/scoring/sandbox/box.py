"""Run untrusted programs in a confined process each; hand their reports to a verifier.

Design (threat model: generated code is hostile until proven otherwise):

* Who decides. This process (the scorer) holds the answers and decides. Programs never
  report a verdict, only data (each output, or the exception), on a pipe; the scorer
  compares it with expected outputs the sandbox never had (``wire``). So exiting
  early, printing "passed", patching ``assert``/builtins/numpy/the harness, ``atexit`` or
  ``__del__`` tricks, forged records: none can produce a pass, only a missing or wrong
  output. Untrusted bytes are decoded by an unpickler that refuses every global.
* Who forks. Not this process (its memory has the answers, maybe threads): a zygote
  (``zygote``) started clean, sent only inputs and programs, forks one child per
  program (about a millisecond; no interpreter start), enforces the wall-clock limit,
  kills on request, caps stdout/stderr, reports each exit. We read each program's records
  straight from a pipe we created (its write end travels to the zygote with the request),
  and ask for a kill as soon as a verdict is known.
* What confines (``info`` reports what was obtained). The zygote runs in a bubblewrap jail
  (``jail``): a root, read-only once built, holding only the interpreter's and
  virtualenv's directories, the system libraries and four devices; its own IPC and PID
  namespaces; nothing else of the host, so no host file and no socket file. Each
  program: a PID namespace of its own (it is pid 1: its death kills everything it
  started), new mount, IPC, network and UTS namespaces (its own /proc, /tmp and /dev/shm;
  its SysV segments die with it; no abstract socket name or loopback port reaches another
  program), its worker slot's cgroup (memory and process limits over all its processes:
  ``cgroup``), as root a uid of its own per slot, as an ordinary user no capabilities;
  limits on address space, CPU, file size and open files, an empty working directory, no
  environment, no inherited fds, no new privileges, death with the zygote, and last a
  seccomp allowlist of system calls (``seccomp``: no keyring, no namespace or mount call,
  no ptrace), so that no kernel object outlives it for the next program to read
  (``child``). As root and as an ordinary user alike (unprivileged user namespaces).
  Without bwrap or user namespaces (``isolation="basic"``, or ``auto`` where the jail
  cannot start): own session and process group (killed as a group, plus a kill(-1) sweep
  as its uid when it has one), the cgroup where one can be made, the same seccomp filter
  (``socket`` and SysV IPC refused, as there are no namespaces of its own), and a Python audit
  hook refusing sockets, ctypes, process control and writes outside its directory.
  Weaker: it shares our uid when the interpreter is not readable by others, and can read
  files.
* How it ended: the zygote reports ``cause`` (``ENDINGS``: the memory limit, from the
  slot's OOM-kill counter; CPU time; the wall clock; a signal; an exit code), from facts
  outside the program.

    with Sandbox(tasks, workers=4) as box:
        box.run(jobs, verifier_for_job, on_done)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evalsuite.scoring.sandbox import wire
from evalsuite.scoring.sandbox.cgroup import CgroupSlots
from evalsuite.scoring.sandbox.jail import (
    JAIL_REFUSED_HINT,
    jail_command,
    python_dirs,
    readable_by_others,
    under_tmp,
    zygote_env,
)
from evalsuite.scoring.sandbox.seccomp import SeccompUnavailable, build_filter
from evalsuite.scoring.sandbox.zygote import HEADER

F_SETPIPE_SZ = 1031
# how a program can end, as the zygote tells it from outside the program; besides these,
# "signal NAME" (killed by a signal, its own or a crash) and "exit code N"
LIMITS = ("memory limit", "CPU time limit", "wall-clock limit")
ENDINGS = (*LIMITS, "stopped by the scorer")
READY_TIMEOUT = 120.0


class SandboxError(RuntimeError):
    """The sandbox itself cannot run (the zygote failed); not a verdict on any program."""


@dataclass(frozen=True, slots=True)
class Job:
    """One program to run: ``kind`` is evalplus, paper or script; ``task`` a key of tasks."""

    kind: str
    code: str
    deadline: float  # wall-clock seconds
    task: str = ""
    split: str = ""
    cpu_limit: float | None = None  # CPU seconds (default: the deadline plus 2)


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How the process ended, as the zygote saw it (the only facts not from the program)."""

    exit_code: int
    seconds: float
    timed_out: bool
    killed: bool
    output: str
    output_bytes: int
    peak_memory_bytes: int | None = None  # of the program and all it started (cgroup)
    cause: str = ""  # one of ENDINGS, or "signal NAME" / "exit code N"
    protocol_error: str | None = None

    @property
    def hit_limit(self) -> str | None:
        """The limit that ended the program, if one did (memory, CPU time, wall clock)."""
        return self.cause if self.cause in LIMITS else None


class Verifier(Protocol):
    def feed(self, kind: int, index: int, sig: bytes, payload: bytes) -> bool:
        """Take one record; True when the verdict is known and the program can be stopped."""

    def finish(self, exit: ExitInfo) -> Any:
        """The outcome, once the process is gone and every record has been fed."""


@dataclass(slots=True)
class _Running:
    index: int
    verifier: Verifier
    fd: int | None
    reader: wire.RecordReader = field(default_factory=wire.RecordReader)
    decided: bool = False
    exit: dict[str, Any] | None = None
    error: str | None = None


# -P: no current directory on sys.path (the zygote starts in /, which programs must not
# be able to plant modules in, whatever the mode)
_ZYGOTE = [sys.executable, "-P", "-m", "evalsuite.scoring.sandbox.zygote"]


def _describe(
    zygote: dict[str, Any], why_not: str | None, cgroups: CgroupSlots, cfg: dict[str, Any]
) -> dict[str, Any]:
    """What confines the programs, as obtained (reported with every score)."""
    jailed = why_not is None
    return {
        **zygote,
        "namespaces": jailed,
        "why_not": why_not,
        "network": "network namespace per program (nothing up)" if jailed else "audit hook",
        "processes": "PID namespace per program" if jailed else "process group",
        "filesystem": (
            "allowlisted read-only root (bubblewrap), private /tmp per program"
            if jailed
            else "audit hook"
        ),
        "ipc": "IPC namespace per program" if jailed else "shared",
        "syscalls": (
            "seccomp allowlist (no keyrings, namespaces, mounts, ptrace, bpf)"
            if cfg["seccomp"]
            else f"unfiltered ({cfg['seccomp_why_not']})"
        ),
        "memory": cgroups.describe(cfg["memory_bytes"], cfg["nproc"]),
    }


class Sandbox:
    """A zygote plus the scorer's side of the protocol; use as a context manager."""

    def __init__(
        self,
        tasks: dict[str, dict[str, Any]],
        *,
        workers: int,
        isolation: str = "auto",
        memory_bytes: int = 4 * 2**30,
        file_bytes: int = 64 * 2**20,
        nproc: int = 64,
        hide: Iterable[str | Path] = (),
        capture_bytes: int = 8192,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if isolation not in ("auto", "namespaces", "basic"):
            raise ValueError(f"isolation must be auto, namespaces or basic, not {isolation!r}")
        self.workers = workers
        self._scratch = tempfile.mkdtemp(prefix="evalsuite-sandbox-")
        os.chmod(self._scratch, 0o711)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the zygote
        self._process: subprocess.Popen[bytes] | None = None
        self._sock = socket.socket()  # replaced in _start; closed in close()
        self._cgroups = CgroupSlots.create(workers, memory_bytes, nproc)
        as_root = os.geteuid() == 0
        env = zygote_env()
        dirs = python_dirs()
        cfg = {
            "memory_bytes": memory_bytes,
            "file_bytes": file_bytes,
            "nproc": nproc,
            "capture_bytes": capture_bytes,
            "job_tmp_bytes": 64 * 2**20,
            "workers": workers,
            "scratch": self._scratch,
            "as_root": as_root,
            "tmp_dirs": under_tmp(dirs),
            "slots": [
                {"join": s.join, "peak": s.peak, "events": s.events} for s in self._cgroups.slots
            ],
        }
        hidden = [str(Path(p).resolve()) for p in hide]
        why_not = "not requested" if isolation == "basic" else None
        try:
            if why_not is None:
                try:
                    jail = jail_command(_ZYGOTE, dirs=dirs, hide=hidden, as_root=as_root)
                    jailed = {**cfg, "namespaces": True, "slot_uids": as_root}
                    jailed.update(
                        seccomp=build_filter(private_namespaces=True), seccomp_why_not=None
                    )
                    message = self._start(jail, env, tasks, jailed)
                    cfg = jailed
                except FileNotFoundError as e:  # no bwrap: the message says how to install it
                    why_not = str(e)
                except SandboxError as e:  # bwrap there, but the kernel or container refused
                    why_not = f"{e}; {JAIL_REFUSED_HINT}"
                if why_not is not None and isolation == "namespaces":
                    why = f"namespace isolation requested but unavailable: {why_not}"
                    raise SandboxError(why)
            if why_not is not None:
                cfg.update(namespaces=False, slot_uids=as_root and readable_by_others(dirs))
                try:
                    cfg.update(seccomp=build_filter(private_namespaces=False), seccomp_why_not=None)
                except SeccompUnavailable as e:
                    cfg.update(seccomp=None, seccomp_why_not=str(e))
                message = self._start(_ZYGOTE, env, tasks, cfg)
        except BaseException:
            self.close()
            raise
        self.info: dict[str, Any] = _describe(message[1], why_not, self._cgroups, cfg)
        self._next_id = 0

    def _start(
        self, command: list[str], env: dict[str, str], tasks: dict[str, Any], cfg: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Start a zygote with ``command`` (its last word is the control socket's fd)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.close()
        self._sock, self._inbox = ours, bytearray()
        self._stderr.seek(0)
        self._stderr.truncate()
        self._process = subprocess.Popen(
            [*command, str(theirs.fileno())],
            pass_fds=(theirs.fileno(), *self._cgroups.fds),
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        theirs.close()
        try:
            self._send(("init", cfg, tasks))
            return self._wait_for("ready", READY_TIMEOUT)
        except OSError as e:  # it died before it could listen (a jail that cannot start)
            self._process.wait()
            raise SandboxError(f"the sandbox zygote exited ({e}){self._stderr_tail()}") from None

    # ---- plumbing --------------------------------------------------------------------
    def _send(self, message: tuple[Any, ...], fds: tuple[int, ...] = ()) -> None:
        data = pickle.dumps(message, protocol=5)
        blob = HEADER.pack(len(data)) + data
        if fds:
            sent = socket.send_fds(self._sock, [blob[:1]], list(fds))
            blob = blob[sent:]
        if blob:
            self._sock.sendall(blob)

    def _messages(self) -> list[tuple[Any, ...]]:
        try:
            data = self._sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            raise SandboxError(f"the sandbox zygote exited{self._stderr_tail()}")
        self._inbox += data
        out = []
        while len(self._inbox) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._inbox)
            if len(self._inbox) < HEADER.size + size:
                break
            message = pickle.loads(bytes(self._inbox[HEADER.size : HEADER.size + size]))
            del self._inbox[: HEADER.size + size]
            if message[0] == "fatal":
                raise SandboxError(f"the sandbox zygote failed: {message[1]}")
            out.append(message)
        return out

    def _wait_for(self, kind: str, timeout: float) -> tuple[Any, ...]:
        self._sock.settimeout(timeout)
        try:
            while True:
                for message in self._messages():
                    if message[0] == kind:
                        return message
        except TimeoutError:
            raise SandboxError(f"the sandbox zygote did not start within {timeout:g} s") from None
        finally:
            self._sock.settimeout(None)

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
            if text:
                return ": " + text.splitlines()[-1][:500]
        return ""

    # ---- running ---------------------------------------------------------------------
    def run(
        self,
        jobs: Iterable[Job],
        verifier_for: Callable[[int, Job], Verifier],
        on_done: Callable[[int, Any], None],
    ) -> None:
        """Run every job (at most ``workers`` at once); ``on_done(index, outcome)`` each."""
        pending = deque(enumerate(jobs))
        running: dict[int, _Running] = {}  # job id -> state
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ, None)

        def stop(job_id: int, state: _Running) -> None:
            if not state.decided:
                state.decided = True
                self._send(("kill", job_id))
            if state.fd is not None:
                selector.unregister(state.fd)
                os.close(state.fd)
                state.fd = None

        def settle(job_id: int, state: _Running) -> None:
            if state.exit is None or state.fd is not None:
                return
            del running[job_id]
            info = ExitInfo(**state.exit, protocol_error=state.error)
            on_done(state.index, state.verifier.finish(info))

        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    index, job = pending.popleft()
                    job_id, self._next_id = self._next_id, self._next_id + 1
                    r, w = os.pipe()
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(r, F_SETPIPE_SZ, 1 << 20)
                    spec = {
                        "kind": job.kind,
                        "code": job.code,
                        "deadline": job.deadline,
                        "cpu_limit": job.cpu_limit,
                        "task": job.task,
                        "split": job.split,
                    }
                    try:
                        self._send(("run", job_id, spec), (w,))
                    finally:
                        os.close(w)
                    running[job_id] = _Running(index, verifier_for(index, job), r)
                    selector.register(r, selectors.EVENT_READ, job_id)
                for key, _ in selector.select():
                    if key.data is None:
                        for message in self._messages():
                            if message[0] == "exited" and message[1] in running:
                                state = running[message[1]]
                                state.exit = message[2]
                                settle(message[1], state)
                        continue
                    job_id = key.data
                    state = running[job_id]
                    data = os.read(state.fd, 1 << 20)  # type: ignore[arg-type]
                    if not data:  # every writer is gone (or the program closed its end)
                        selector.unregister(state.fd)
                        os.close(state.fd)  # type: ignore[arg-type]
                        state.fd = None
                        settle(job_id, state)
                        continue
                    try:
                        records = state.reader.feed(data)
                    except wire.DecodeError as e:  # the program broke the protocol
                        state.error = str(e)
                        records = []
                        stop(job_id, state)
                    for record in records:
                        if state.verifier.feed(*record):
                            stop(job_id, state)
                            break
                    settle(job_id, state)
        finally:
            for job_id, state in running.items():
                with contextlib.suppress(OSError):
                    self._send(("kill", job_id))
                if state.fd is not None:
                    os.close(state.fd)
            selector.close()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._send(("quit",))
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._sock.close()
        self._stderr.close()
        self._cgroups.close()
        for attempt in range(3):
            with contextlib.suppress(OSError):
                import shutil

                shutil.rmtree(self._scratch)
                break
            time.sleep(0.1 * (attempt + 1))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
