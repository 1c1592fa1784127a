"""Inside the sandbox: lock the process down, run the program, report outputs as data.

This code runs in the freshly forked process that will execute untrusted code (the zygote
forks it; see ``zygote``). It first takes away everything the program must not
have (see ``_confine``), then reproduces the reference harness step by step, so that
programs behave here exactly as under EvalPlus or bigcode:

* evalplus: ``exec`` the solution in a fresh namespace, then call the entry point on each
  input with that input's time limit (an exception inside the call, the EvalPlus
  ``TimeoutException`` included, ends the run), EvalPlus' ``reliability_guard`` applied;
* paper: ``exec`` program + the dataset's test definitions + ``check(entry_point)`` as one
  module, bigcode's ``reliability_guard`` applied. The test's ``check`` is the HF one with
  its ``results`` (the answers) removed: it hands each output to the reporter instead of
  asserting, and the scorer asserts outside.

Nothing here decides pass or fail, and nothing here is trusted after ``exec``: the program
can rewrite this module, the records, anything in the process. It can only send data, and
the scorer compares that data with answers this process never saw.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import faulthandler
import math
import os
import pickle
import random
import resource
import signal
import sys
import time
from typing import Any

from evalsuite.scoring.sandbox import wire
from evalsuite.scoring.sandbox.seccomp import load_filter

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
CAP_VERSION_3 = 0x20080522
FLUSH_EVERY = 0.004  # seconds: buffered records reach the scorer this fast, so it can stop us
TICK = 0.005  # the one timer: flushes records and enforces the per-input time limit
SETUP_FAILED = 0xFFFFFFFF  # record index: the sandbox itself could not be set up
LOAD_FAILED = 0xFFFFFFFE  # record index: the program failed before the first input
SAFE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}

_libc = ctypes.CDLL(None, use_errno=True)
_OS_DISABLED = (
    "kill",
    "system",
    "putenv",
    "remove",
    "removedirs",
    "rmdir",
    "fchdir",
    "setuid",
    "fork",
    "forkpty",
    "killpg",
    "rename",
    "renames",
    "truncate",
    "replace",
    "unlink",
    "fchmod",
    "fchown",
    "chmod",
    "chown",
    "chroot",
    "lchflags",
    "lchmod",
    "lchown",
    "getcwd",
    "chdir",
)  # what reliability_guard sets to None in os


def call(result: int, what: str) -> None:
    """Raise OSError for a failed libc call (they return -1 and set errno)."""
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def child_cpu_limit(job: dict[str, Any]) -> int:
    """The program's RLIMIT_CPU soft limit in seconds (SIGXCPU there, SIGKILL a second on)."""
    cpu = job.get("cpu_limit")
    return math.ceil(cpu) if cpu else int(job["deadline"]) + 2


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None):
    call(_libc.mount(source, target, fstype, flags, data), f"mount {target.decode()}")


class TimeoutException(Exception):
    """Raised inside the program when an input runs past its limit (as EvalPlus does)."""


class _NoInput:
    """stdin as EvalPlus and bigcode give it: reading raises OSError."""

    def read(self, *args: Any) -> str:
        raise OSError("stdin is not readable in the sandbox")

    readline = readlines = read

    def readable(self) -> bool:
        return False


class Reporter:
    """Buffers records and writes them to the result pipe, from the loop and from the tick."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer, self.busy = fd, bytearray(), False
        self.flushed = time.monotonic()
        self.deadline: float | None = None  # the current input's limit, when one runs
        self.count = 0

    def flush(self) -> None:
        if self.busy or not self.buffer:
            return
        self.busy = True
        try:
            data, self.buffer = bytes(self.buffer), bytearray()
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            self.flushed = time.monotonic()
        finally:
            self.busy = False

    def add(self, blob: bytes) -> None:
        self.buffer += blob  # one C call: a tick cannot see half a record
        if len(self.buffer) > 1 << 20:
            self.flush()

    def output(self, value: Any) -> None:
        """The next output, as data (or why it cannot be sent)."""
        index, self.count = self.count, self.count + 1
        try:
            payload = wire.encode(value)
        except BaseException as e:
            self.add(wire.record(wire.UNENCODABLE, index, _describe(e)))
            return
        if len(payload) > wire.MAX_PAYLOAD:
            self.add(wire.record(wire.UNENCODABLE, index, b"output too large to send"))
        else:
            self.add(wire.record(wire.OUT, index, payload, sign=True))

    def tick(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now - self.flushed > FLUSH_EVERY:
            self.flush()
        if self.deadline is not None and now > self.deadline:
            self.deadline = None
            raise TimeoutException("Timed out!")


def _describe(e: BaseException) -> bytes:
    try:
        text = f"{type(e).__name__}: {e}"
    except BaseException:
        text = type(e).__name__
    return text[:2000].encode("utf-8", "replace")


def _confine(cfg: dict[str, Any], job: dict[str, Any], keep_fd: int, out_fd: int) -> None:
    """Own session, own /proc, empty cwd, limits, no privileges, no inherited fds or env."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    if job.get("cgroup"):  # the slot's limits hold for everything this program starts
        for fd in job["cgroup"]["join"]:
            os.write(fd, b"0")
    if cfg["namespaces"]:  # pid 1 of a fresh PID namespace: our own /proc, /tmp and IPC
        _private_mounts(cfg)
        job["dir"] = "/tmp/work"
        os.mkdir(job["dir"], 0o700)
        if job.get("uid") is not None:
            os.chown(job["dir"], job["uid"], job["uid"])
    os.chdir(job["dir"])
    memory = cfg["memory_bytes"]
    cpu = child_cpu_limit(job)
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU, then SIGKILL a second later
        resource.RLIMIT_FSIZE: cfg["file_bytes"],
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: cfg["nproc"],
    }
    if memory:
        limits.update({resource.RLIMIT_AS: memory, resource.RLIMIT_DATA: memory})
        if job["kind"] == "evalplus":  # EvalPlus also raises the stack limit to the memory cap
            limits[resource.RLIMIT_STACK] = memory
    for key, value in limits.items():
        soft, hard = value if isinstance(value, tuple) else (value, value)
        _, ceiling = resource.getrlimit(key)
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(key, (soft, hard))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails, it does not kill
    if job.get("uid") is not None:
        os.setgroups([])
        os.setresgid(job["uid"], job["uid"], job["uid"])
        os.setresuid(job["uid"], job["uid"], job["uid"])
    elif cfg["namespaces"]:  # root of the jail's user namespace: keep the uid, not its powers
        _drop_capabilities()
    call(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    call(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)
    os.environ.clear()
    os.environ.update(SAFE_ENV)
    random.seed()
    if cfg["seccomp"]:  # last: from here on only the allowlisted system calls exist
        load_filter(cfg["seccomp"])
    if not cfg["namespaces"]:
        _refuse_in_process(job["dir"])


def _private_mounts(cfg: dict[str, Any]) -> None:
    """New mount, IPC, network and UTS namespaces; this PID namespace's /proc; own /tmp.

    The IPC namespace dies with the program, and with it any shared memory segment,
    semaphore or message queue it made. The network namespace is the program's alone: its
    loopback (down) and its abstract Unix socket names reach no other program, concurrent
    or later. An allowed directory under /tmp (a checkout or virtualenv there) is bound
    back over the fresh tmpfs, read-only.
    """
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS
    call(_libc.unshare(flags), "unshare(NEWNS | NEWIPC | NEWNET | NEWUTS)")
    _mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    kept = [(d, os.open(d, os.O_PATH | os.O_DIRECTORY)) for d in cfg["tmp_dirs"]]
    size = f"size={cfg['job_tmp_bytes']},mode=1777".encode()
    for path in (b"/tmp", b"/dev/shm"):
        _mount(b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, size)
    for d, fd in kept:
        os.makedirs(d, mode=0o755, exist_ok=True)
        target = d.encode()
        _mount(f"/proc/self/fd/{fd}".encode(), target, None, MS_BIND | MS_REC, None)
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV  # locked ones kept
        _mount(b"none", target, None, flags, None)
        os.close(fd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


def _drop_capabilities() -> None:
    """Empty bounding, effective, permitted and inheritable sets (ambient follows)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        call(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"prctl(CAPBSET_DROP, {cap})")
    data = (_CapData * 2)()
    call(_libc.capset(ctypes.byref(_CapHeader(CAP_VERSION_3, 0)), data), "capset")


def _refuse_in_process(workdir: str) -> None:
    """Without namespaces: refuse network, ctypes, processes and writes outside ``workdir``.

    Weaker than the kernel (the program shares our address space), but audit hooks fire
    inside C code too (``_socket`` used directly still raises ``socket.connect``), ctypes is
    refused so they cannot be patched out from below, and a hook cannot be removed.
    """
    blocked = ("socket.", "ctypes.", "os.kill", "os.killpg", "os.system", "os.exec", "os.fork")
    blocked += ("os.posix_spawn", "os.spawn", "subprocess.", "pty.", "resource.setrlimit")
    path_events = {"os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown"}
    path_events |= {"os.link", "os.symlink", "os.utime", "os.mkdir", "shutil.rmtree"}
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    root = os.path.realpath(workdir) + os.sep

    def outside(path: Any) -> bool:
        if isinstance(path, int):
            return False  # an fd it already holds
        return not (os.path.realpath(os.fsdecode(path)) + os.sep).startswith(root)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(blocked) and event != "socket.gethostname":
            raise PermissionError(f"{event} is not allowed in the sandbox")
        if event == "open" and args[2] & writes and outside(args[0]):
            raise PermissionError(f"writing {args[0]!r} is not allowed in the sandbox")
        if event in path_events and any(outside(a) for a in args[:2] if isinstance(a, str)):
            raise PermissionError(f"{event} outside the sandbox directory is not allowed")

    sys.addaudithook(hook)


def _guard(bigcode: bool) -> None:
    """The reference harness's ``reliability_guard``: what programs find disabled there."""
    faulthandler.disable()
    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in _OS_DISABLED:
        setattr(os, name, None)
    if not bigcode:
        builtins.open = None  # type: ignore[assignment]
    import shutil
    import subprocess

    shutil.rmtree = shutil.move = shutil.chown = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]
    builtins.help = None  # type: ignore[attr-defined]
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None  # type: ignore[assignment]


def _evalplus(job: dict[str, Any], task: dict[str, Any], rep: Reporter) -> None:
    split = job["split"]
    inputs, limits = pickle.loads(task[f"{split}_inputs"]), task[f"{split}_limits"]
    special = task["special"]
    namespace: dict[str, Any] = {}
    try:
        exec(job["code"], namespace)
        fn = namespace[task["entry_point"]]
    except BaseException as e:
        rep.add(wire.record(wire.EXC, LOAD_FAILED, _describe(e)))
        return
    rep.add(wire.record(wire.STAGE, wire.STAGE_LOADED))
    for i, inp in enumerate(inputs):
        rep.deadline = time.monotonic() + limits[i]
        try:
            out = fn(*inp)
            rep.deadline = None
        except BaseException as e:
            rep.deadline = None
            kind = wire.TIMEOUT if isinstance(e, TimeoutException) else wire.EXC
            rep.add(wire.record(kind, i, _describe(e)))
            return
        rep.output((out, inp) if special else out)


def _paper(job: dict[str, Any], task: dict[str, Any], rep: Reporter) -> None:
    special, started = task["special"], []

    def inputs() -> list[Any]:
        started.append(True)
        return pickle.loads(task["paper_inputs"])

    def report(inp: Any, out: Any) -> None:
        rep.output((out, inp) if special else out)

    namespace = {"__evalsuite_report__": report, "__evalsuite_inputs__": inputs}
    try:
        exec(job["code"] + "\n" + task["paper_reference"], namespace)
    except BaseException as e:
        rep.add(wire.record(wire.EXC, rep.count if started else LOAD_FAILED, _describe(e)))


def _script(job: dict[str, Any], rep: Reporter) -> None:
    """A whole program, nothing reported: for reference checks, whose verdict is output."""
    exec(job["code"], {"__name__": "__main__"})


def main(cfg: dict[str, Any], job: dict[str, Any], task: dict[str, Any] | None) -> None:
    """Entry point in the forked child; never returns (the caller ``os._exit``s)."""
    result_fd, out_fd = job["result_fd"], job["out_fd"]
    try:
        _confine(cfg, job, result_fd, out_fd)
    except BaseException as e:  # before any program code: this record is ours
        os.write(result_fd, wire.record(wire.EXC, SETUP_FAILED, b"sandbox: " + _describe(e)))
        return
    rep = Reporter(result_fd)
    sys.stdin = _NoInput()  # type: ignore[assignment]
    signal.signal(signal.SIGALRM, rep.tick)
    signal.setitimer(signal.ITIMER_REAL, TICK, TICK)
    try:
        if job["kind"] == "script":
            _script(job, rep)
        else:
            _guard(bigcode=job["kind"] == "paper")
            assert task is not None
            (_paper if job["kind"] == "paper" else _evalplus)(job, task, rep)
        rep.add(wire.record(wire.STAGE, wire.STAGE_DONE))
    except BaseException as e:  # the program broke the harness: say so, the scorer decides
        rep.add(wire.record(wire.EXC, rep.count, b"harness: " + _describe(e)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        rep.busy = False
        for stream in (sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(BaseException):
                stream.flush()  # type: ignore[union-attr]
        rep.flush()
