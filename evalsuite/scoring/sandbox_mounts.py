"""The filesystem and namespace set-up of the sandbox zygote (root only), and its probe.

Once per zygote, so every child inherits it: new mount, network and IPC namespaces; fresh
tmpfs over /tmp, /var/tmp and /dev/shm; the places that hold answers (dataset, caches)
covered by empty read-only tmpfs; the root filesystem read-only. And because the children
run as another uid, the interpreter's own directories are made reachable for it when they
sit under a closed one (pyenv under /root, mode 700, is the case on this machine):
without that, any module not imported yet would fail to import in the sandbox.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def call(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    call(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data or None)), target)


def _python_dirs() -> list[str]:
    """Directories the interpreter imports from (the minimal set: none inside another)."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    found |= {p for p in sys.path if p and os.path.isdir(p)}
    # the directory holding the evalsuite package (an editable install may not be on sys.path)
    found.add(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    dirs = sorted(os.path.realpath(p) for p in found)
    keep: list[str] = []
    for d in dirs:
        if not any(d == k or d.startswith(k + os.sep) for k in keep):
            keep.append(d)
    return keep


def _closed_ancestor(path: str) -> str | None:
    """The first directory on the way to ``path`` that other users cannot enter."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def readable_by_others() -> bool:
    return all(_closed_ancestor(d) is None for d in _python_dirs())


def _expose_python(stage: str) -> None:
    """Make the interpreter's directories reachable for another uid, and only them.

    A closed directory on the way (e.g. /root, mode 700, holding pyenv) is covered with an
    empty tmpfs in which the Python directories are bind-mounted back at the same paths:
    imports work as the sandbox uid, the rest of that directory stays invisible.
    """
    closed: dict[str, list[str]] = {}
    for d in _python_dirs():
        top = _closed_ancestor(d)
        if top is not None:
            closed.setdefault(top, []).append(d)
    for n, (top, dirs) in enumerate(closed.items()):
        staged = []
        for m, d in enumerate(dirs):
            spot = os.path.join(stage, f"{n}-{m}")
            os.makedirs(spot)
            _mount(d, spot, None, MS_BIND | MS_REC)
            staged.append((spot, d))
        _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=65536,mode=755")
        for spot, d in staged:
            os.makedirs(d, mode=0o755, exist_ok=True)
            _mount(spot, d, None, MS_BIND | MS_REC)
            call(_libc.umount2(spot.encode(), 2), f"umount {spot}")  # MNT_DETACH


def setup_namespaces(hide: list[str], tmp_bytes: int) -> None:
    """Mount/net/IPC namespaces for the zygote and its children."""
    call(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    covered = [p for p in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(p)]
    # A checkout or virtualenv under /tmp (a CI clone) would vanish under the fresh tmpfs:
    # hold each such Python directory open, then bind it back at its path.
    kept = [
        (d, os.open(d, os.O_PATH | os.O_DIRECTORY))
        for d in _python_dirs()
        if any(d == c or d.startswith(c + os.sep) for c in covered)
    ]
    for path in covered:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    for d, fd in kept:
        os.makedirs(d, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", d, None, MS_BIND | MS_REC)
        os.close(fd)
    os.mkdir("/tmp/.stage", 0o700)
    _expose_python("/tmp/.stage")
    for path in hide:
        if os.path.isdir(path):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            _mount("tmpfs", path, "tmpfs", flags, "size=4096,mode=555")
        elif os.path.isfile(path):
            _mount("/dev/null", path, None, MS_BIND)
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def probe_namespaces() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "not running as root (user namespaces are not used)"
    pid = os.fork()
    if pid == 0:
        try:
            call(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID), "unshare")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return None if os.waitstatus_to_exitcode(status) == 0 else "unshare() is refused here"
