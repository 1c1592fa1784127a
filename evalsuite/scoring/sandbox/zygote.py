"""The fork server: one clean process that forks a confined child per program, and reaps it.

Why a separate process: the scorer holds the expected outputs, and a child forked from it
would inherit them (and whatever else the scorer has: threads, open files, credentials).
The zygote is started from scratch with an empty environment and is sent only what
programs may see (inputs, entry points, time limits); it imports numpy and the usual
modules once, so forking a child costs about a millisecond instead of an interpreter start.

Where the scorer could build one, the zygote runs inside the bubblewrap jail
(``jail``: an allowlisted read-only root, no network, its own IPC and PID
namespaces). Per program it then adds a new PID namespace (the child is its pid 1: when
it dies the kernel kills everything it started, daemons included, and it cannot see or
signal anything outside); the child itself takes new mount and IPC namespaces, its own
/proc and /tmp, its slot's cgroup, and a uid of its own (as root) or no capabilities (as
an ordinary user); see ``child``.

Without the jail (``isolation="basic"``, or bwrap unusable here), each child gets its own
session, is killed by process group plus (as root) a kill(-1) sweep as its uid, and
refuses network and process control at the Python audit layer: weaker, and reported so.

Protocol on the control socket (length-prefixed pickles; both ends are trusted code):
in: ``("run", id, job)`` with the result pipe's write end attached, ``("kill", id)``,
``("quit",)``; out: ``("ready", info)``, ``("exited", id, info)``, ``("fatal", text)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import os
import pickle
import secrets
import selectors
import shutil
import signal
import socket
import struct
import sys
import time
from typing import Any

from evalsuite.scoring.sandbox import child as sandbox_child
from evalsuite.scoring.sandbox.cgroup import read_oom_kills, read_peak, reset_peak
from evalsuite.scoring.sandbox.child import CLONE_NEWPID, call, child_cpu_limit

HEADER = struct.Struct("<I")
PRELOAD = (  # imported once here, so programs that import them do not pay for it
    "numpy",
    "math",
    "cmath",
    "re",
    "string",
    "itertools",
    "functools",
    "collections",
    "heapq",
    "bisect",
    "typing",
    "fractions",
    "decimal",
    "statistics",
    "random",
    "hashlib",
    "copy",
    "operator",
    "datetime",
    "json",
    "shutil",
    "subprocess",
    "array",
)
_libc = ctypes.CDLL(None, use_errno=True)


class Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.inbox, self.fds = sock, bytearray(), []
        self.jobs: dict[int, dict[str, Any]] = {}  # pid -> job
        self.by_id: dict[int, int] = {}  # job id -> pid
        self.free_slots: list[int] = []
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    # ---- messages ------------------------------------------------------------------------
    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=5)
        self.sock.sendall(HEADER.pack(len(data)) + data)

    def receive(self) -> list[tuple[Any, ...]]:
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 64)
        if not data:
            raise EOFError
        self.inbox += data
        self.fds.extend(fds)
        out = []
        while len(self.inbox) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.inbox)
            if len(self.inbox) < HEADER.size + size:
                break
            out.append(pickle.loads(bytes(self.inbox[HEADER.size : HEADER.size + size])))
            del self.inbox[: HEADER.size + size]
        return out

    # ---- setup ---------------------------------------------------------------------------
    def setup(self, cfg: dict[str, Any], tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Take the configuration; the jail (if any) was made by the scorer around us."""
        self.cfg, self.tasks = cfg, tasks
        self.namespaces = cfg["namespaces"]
        if self.namespaces:
            self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY)
        else:
            self.jobs_root = os.path.join(cfg["scratch"], "jobs")
            os.makedirs(self.jobs_root, mode=0o711, exist_ok=True)
        # another uid per slot as root (in the jail, or outside it if it can still import);
        # as an ordinary user there is one uid: programs lose their capabilities instead
        drop = cfg["slot_uids"]
        self.uid_base = 0x40000000 + secrets.randbelow(1 << 20) * 256 if drop else None
        self.free_slots = list(range(cfg["workers"]))
        if self.namespaces:
            uid = "own uid per worker slot" if drop else "one uid, no capabilities"
        else:
            uid = "own uid per worker slot" if drop else "same uid as the scorer"
        info: dict[str, Any] = {
            "root": cfg["as_root"],
            "uid": uid,
            "nproc": f"{cfg['nproc']} (binds: unprivileged uid)" if drop else "shared",
        }
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        gc.collect()
        gc.freeze()  # children touching these objects' GC headers would copy every page
        return info

    # ---- jobs ----------------------------------------------------------------------------
    def start(self, job_id: int, job: dict[str, Any], result_w: int) -> None:
        slot = self.free_slots.pop(0)
        uid = None if self.uid_base is None else self.uid_base + slot
        job_dir = None  # with namespaces the child makes its own, on its own tmpfs
        if not self.namespaces:
            job_dir = os.path.join(self.jobs_root, str(job_id))
            os.mkdir(job_dir, 0o700)
            if uid is not None:
                os.chown(job_dir, uid, uid)
        out_r, out_w = os.pipe()
        child = {**job, "dir": job_dir, "uid": uid, "result_fd": result_w, "out_fd": out_w}
        child["cgroup"] = cgroup = self.cfg["slots"][slot] if self.cfg["slots"] else None
        oom_kills = None
        if cgroup is not None:
            reset_peak(cgroup["peak"])
            oom_kills = read_oom_kills(cgroup["events"])
        task = self.tasks.get(job.get("task", ""))
        if self.namespaces:
            call(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    signal.set_wakeup_fd(-1)
                    self.jobs.clear()
                    sandbox_child.main(self.cfg, child, task)
                finally:
                    os._exit(0)
        finally:
            if self.namespaces:
                call(_libc.setns(self.own_pidns, CLONE_NEWPID), "setns")
        os.close(result_w)
        os.close(out_w)
        os.set_blocking(out_r, False)
        now = time.monotonic()
        record = {
            "id": job_id,
            "slot": slot,
            "uid": uid,
            "dir": job_dir,
            "out": out_r,
            "output": bytearray(),
            "output_bytes": 0,
            "started": now,
            "deadline": now + job["deadline"],
            "timed_out": False,
            "killed": False,
            "oom_kills": oom_kills,
            "cpu_limit": child_cpu_limit(job),
        }
        self.jobs[pid] = record
        self.by_id[job_id] = pid
        self.selector.register(out_r, selectors.EVENT_READ, ("out", pid))

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.namespaces:
                os.kill(pid, signal.SIGKILL)  # pid 1 of its namespace: the kernel kills the rest
            else:
                os.killpg(pid, signal.SIGKILL)

    def sweep(self, uid: int) -> None:
        """Kill every process left with this uid (daemons that left the process group)."""
        pid = os.fork()
        if pid == 0:
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)  # never signals the caller itself
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

    def peak(self, slot: int) -> int | None:
        """The slot's memory peak over the program just ended (all its processes)."""
        return read_peak(self.cfg["slots"][slot]["peak"]) if self.cfg["slots"] else None

    def oom_killed(self, job: dict[str, Any]) -> bool:
        """Whether the slot's memory limit killed a process of the program just ended."""
        if job["oom_kills"] is None:
            return False
        now = read_oom_kills(self.cfg["slots"][job["slot"]]["events"])
        return now is not None and now > job["oom_kills"]

    def cause(self, job: dict[str, Any], status: int, cpu_seconds: float) -> str:
        """What ended the program, from facts outside it (``box.ENDINGS`` lists them)."""
        code = os.waitstatus_to_exitcode(status)
        if self.oom_killed(job):  # first: an OOM kill of a child can end the program any way
            return "memory limit"
        if job["timed_out"]:
            return "wall-clock limit"
        if job["killed"]:
            return "stopped by the scorer"
        if code == -signal.SIGXCPU or (
            code == -signal.SIGKILL and cpu_seconds >= job["cpu_limit"] - 0.05
        ):
            return "CPU time limit"
        if code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def drain(self, job: dict[str, Any]) -> None:
        while True:
            try:
                data = os.read(job["out"], 65536)
            except BlockingIOError:
                return
            if not data:
                self.selector.unregister(job["out"])
                os.close(job["out"])
                job["out"] = None
                return
            job["output_bytes"] += len(data)
            room = self.cfg["capture_bytes"] - len(job["output"])
            if room > 0:
                job["output"] += data[:room]

    def reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if os.WIFSTOPPED(status):  # traced by us (PTRACE_TRACEME): never resumed
                self.kill(pid)
                continue
            job = self.jobs.pop(pid, None)
            if job is None:
                continue
            if not self.namespaces:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                if job["uid"] is not None:
                    self.sweep(job["uid"])
            if job["out"] is not None:
                self.drain(job)
                if job["out"] is not None:
                    self.selector.unregister(job["out"])
                    os.close(job["out"])
            if job["dir"]:
                shutil.rmtree(job["dir"], ignore_errors=True)
            self.by_id.pop(job["id"], None)
            self.free_slots.append(job["slot"])
            self.free_slots.sort()
            self.send(
                (
                    "exited",
                    job["id"],
                    {
                        "exit_code": os.waitstatus_to_exitcode(status),
                        "seconds": time.monotonic() - job["started"],
                        "timed_out": job["timed_out"],
                        "killed": job["killed"],
                        "output": bytes(job["output"]).decode("utf-8", "replace"),
                        "output_bytes": job["output_bytes"],
                        "peak_memory_bytes": self.peak(job["slot"]),
                        "cause": self.cause(job, status, usage.ru_utime + usage.ru_stime),
                    },
                )
            )

    # ---- loop ----------------------------------------------------------------------------
    def serve(self) -> None:
        self.selector.register(self.sock, selectors.EVENT_READ, ("sock", None))
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        while True:
            now = time.monotonic()
            deadlines = [j["deadline"] for j in self.jobs.values() if not j["timed_out"]]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            for key, _ in self.selector.select(timeout):
                kind, pid = key.data
                if kind == "sock":
                    for message in self.receive():
                        if message[0] == "quit":
                            return
                        if message[0] == "run":
                            self.start(message[1], message[2], self.fds.pop(0))
                        elif message[0] == "kill" and message[1] in self.by_id:
                            pid = self.by_id[message[1]]
                            self.jobs[pid]["killed"] = True
                            self.kill(pid)
                elif kind == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self.reap()
                elif pid in self.jobs and self.jobs[pid]["out"] is not None:
                    self.drain(self.jobs[pid])
            now = time.monotonic()
            for pid, job in self.jobs.items():
                if not job["timed_out"] and now >= job["deadline"]:
                    job["timed_out"] = True
                    self.kill(pid)
            self.reap()

    def shutdown(self) -> None:
        for pid in list(self.jobs):
            self.kill(pid)
        deadline = time.monotonic() + 5
        while self.jobs and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            job = self.jobs.pop(pid, None)
            if job is not None:
                if not self.namespaces and job["uid"] is not None:
                    self.sweep(job["uid"])
                if job["dir"]:
                    shutil.rmtree(job["dir"], ignore_errors=True)


def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    call(_libc.prctl(1, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")  # die with the scorer
    zygote = Zygote(sock)
    try:
        messages = zygote.receive()
        while not messages:
            messages = zygote.receive()
        _, cfg, tasks = messages[0]
        zygote.send(("ready", zygote.setup(cfg, tasks)))
        zygote.serve()
    except EOFError:
        pass
    except BaseException as e:
        with contextlib.suppress(OSError):
            zygote.send(("fatal", f"{type(e).__name__}: {e}"))
        raise
    finally:
        zygote.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
