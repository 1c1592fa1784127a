"""One cgroup per sandbox worker slot: a memory and a process limit over a whole program.

RLIMIT_AS binds one process; a program that forks gets it once per child. A cgroup counts
the program and everything it starts together: ``memory.max``/``memory.limit_in_bytes``
(tmpfs pages it writes included) and ``pids.max``. The slots are made under the scorer's
own cgroup, so a limit the host set on us still applies above them:

* cgroup v2, where our cgroup can delegate ``memory`` and ``pids`` to children;
* cgroup v1, where the ``memory`` and ``pids`` hierarchies are mounted and writable
  (as root; this is what the development machines have);
* otherwise none, reported as such (per-process rlimits only).

The scorer creates the slots and opens, for each, the files a program writes itself into
(``cgroup.procs``) and its memory peak; those descriptors go to the zygote (inside the
jail, where no cgroup filesystem is mounted). A program joins its slot before it runs a
line of untrusted code. Slots are reused one program after another (a PID namespace's end
kills all its processes, so a slot is empty when its next program starts) and removed on
close; slots left by a scorer that was killed are removed by the next one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "evalsuite-sandbox-"


@dataclass
class Slot:
    join: list[int]  # fds of cgroup.procs, one per hierarchy: write b"0" to enter
    peak: int | None  # fd of the memory peak (read; v1: write "0" to reset)
    events: int | None = None  # fd of the OOM-kill counter (v2 memory.events, v1 oom_control)


@dataclass
class CgroupSlots:
    """Per-slot cgroups, or none (``version`` None, ``why_not`` says why)."""

    version: str | None = None
    why_not: str | None = None
    slots: list[Slot] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)  # every directory made, parents last

    @classmethod
    def create(cls, count: int, memory_bytes: int, pids: int) -> CgroupSlots:
        reasons = []
        for version, make in (("v2", _make_v2), ("v1", _make_v1)):
            made = cls(version=version)
            try:
                make(made, count, memory_bytes, pids)
                return made
            except OSError as e:
                made.close()
                reasons.append(f"{version}: {e.strerror or e} ({e.filename or ''})".strip())
        return cls(why_not="; ".join(reasons))

    @property
    def fds(self) -> list[int]:
        return [fd for s in self.slots for fd in [*s.join, s.peak, s.events] if fd is not None]

    def describe(self, memory_bytes: int, pids: int) -> str:
        if self.version is None:
            return f"per-process rlimits only (no usable cgroup: {self.why_not})"
        return f"cgroup {self.version} per program: memory {memory_bytes} bytes, {pids} processes"

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.slots = []
        for d in self.dirs:
            _remove(d)
        self.dirs = []


def _remove(path: Path) -> None:
    """rmdir a slot; its last processes may still be exiting for a moment."""
    for attempt in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01 * (attempt + 1))


def _own(hierarchy: str) -> str | None:
    """Our cgroup path in a v1 hierarchy (``memory``), or in v2 (``""``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",") if controllers else []
        if (hierarchy == "" and not names) or hierarchy in names:
            return path
    return None


def _sweep_stale(parent: Path) -> None:
    """Remove slot groups whose scorer is gone (killed before it could clean up)."""
    with contextlib.suppress(OSError):
        for group in parent.glob(PREFIX + "*"):
            pid = group.name[len(PREFIX) :].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                for slot in group.glob("slot-*"):
                    _remove(slot)
                _remove(group)


def _group(made: CgroupSlots, parent: Path) -> Path:
    _sweep_stale(parent)
    group = parent / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    group.mkdir(mode=0o755)
    made.dirs.insert(0, group)
    return group


def _slot_dir(made: CgroupSlots, group: Path, n: int) -> Path:
    path = group / f"slot-{n}"
    path.mkdir(mode=0o755)
    made.dirs.insert(0, path)
    return path


def _make_v2(made: CgroupSlots, count: int, memory_bytes: int, pids: int) -> None:
    own = _own("")
    if own is None or not (ROOT / "cgroup.controllers").exists():
        raise OSError(0, "no unified hierarchy at /sys/fs/cgroup", str(ROOT))
    parent = ROOT / own.lstrip("/")
    if not {"memory", "pids"} <= set((parent / "cgroup.controllers").read_text().split()):
        raise OSError(0, "memory and pids are not delegated to our cgroup", str(parent))
    if not {"memory", "pids"} <= set((parent / "cgroup.subtree_control").read_text().split()):
        # refused (EBUSY) when our cgroup holds processes and is not the root: a delegating
        # host gives us a cgroup whose subtree we may shape
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    group = _group(made, parent)
    (group / "cgroup.subtree_control").write_text("+memory +pids")
    for n in range(count):
        path = _slot_dir(made, group, n)
        (path / "memory.max").write_text(str(memory_bytes))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")
        (path / "pids.max").write_text(str(pids))
        join = os.open(path / "cgroup.procs", os.O_WRONLY)
        peak = events = None
        with contextlib.suppress(OSError):
            peak = os.open(path / "memory.peak", os.O_RDWR)
        with contextlib.suppress(OSError):
            events = os.open(path / "memory.events", os.O_RDONLY)
        made.slots.append(Slot([join], peak, events))


def _v1_mount(controller: str) -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].startswith("cgroup "):
            options = fields[1].split()[-1].split(",")
            if controller in options:
                return Path(fields[0].split()[4])
    raise OSError(0, f"no v1 {controller} hierarchy mounted", controller)


def _make_v1(made: CgroupSlots, count: int, memory_bytes: int, pids: int) -> None:
    groups = {}
    for controller in ("memory", "pids"):
        own = _own(controller) or "/"
        groups[controller] = _group(made, _v1_mount(controller) / own.lstrip("/"))
    for n in range(count):
        memory = _slot_dir(made, groups["memory"], n)
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        task_pids = _slot_dir(made, groups["pids"], n)
        (task_pids / "pids.max").write_text(str(pids))
        join = [os.open(d / "cgroup.procs", os.O_WRONLY) for d in (memory, task_pids)]
        peak = os.open(memory / "memory.max_usage_in_bytes", os.O_RDWR)
        events = None
        with contextlib.suppress(OSError):
            events = os.open(memory / "memory.oom_control", os.O_RDONLY)
        made.slots.append(Slot(join, peak, events))


def reset_peak(fd: int | None) -> None:
    """Start a slot's peak afresh (v1; v2 kernels >= 6.12 reset it per descriptor)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.pwrite(fd, b"0", 0)


def read_peak(fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 64, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_oom_kills(fd: int | None) -> int | None:
    """How many processes the slot's memory limit has killed so far (None: unknown)."""
    if fd is None:
        return None
    try:
        for line in os.pread(fd, 4096, 0).decode().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None
