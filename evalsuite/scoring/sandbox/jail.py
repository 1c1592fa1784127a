"""The sandbox's filesystem and namespaces: an allowlisted root built by bubblewrap.

The zygote (and so every program it forks) runs inside one ``bwrap`` jail whose root is an
empty tmpfs holding only what a Python program needs to run:

* read-only: the interpreter's and the virtualenv's directories (wherever they live, a
  checkout included; from the checkout only the ``evalsuite`` package itself), the system
  library directories (``/usr/lib``, ``/lib`` ...: the shared objects numpy and the
  interpreter load) and ``/etc/ld.so.cache``;
* the null, zero, random and urandom devices; a tmpfs for ``/tmp`` and ``/dev/shm``;
  ``/proc`` of the jail's own PID namespace (each program mounts its own, see
  ``child``);
* new network, IPC, UTS and PID namespaces (and per program new network, IPC, UTS, PID
  and mount namespaces of its own, see ``child``);
* the root itself is remounted read-only once built, as root and as an ordinary user
  alike (in a user namespace the root tmpfs belongs to the programs' own uid, so without
  that a program could plant ``/unicodedata.py`` for the next one); a program's writable
  space is its own ``/tmp`` and ``/dev/shm``, sized and counted in its slot's cgroup.

Nothing else of the host exists in there: not its run, var, home, root, srv or opt
directories, no socket file, not the rest of the checkout, the data or the caches. The
places that hold answers are also covered explicitly (``hide``) in case one of them lies
inside an allowed directory, and so are the parts of the package that hold answers
(``ANSWER_BEARING``).

As root, bwrap runs without a user namespace and the zygote keeps its capabilities (it
needs them to give each program a PID/IPC/mount namespace and a uid of its own). As an
ordinary user it runs in a new user namespace (unprivileged user namespaces), where the
zygote is root of that namespace only; programs then keep that one uid and lose every
capability instead of switching uid.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

BWRAP = "bwrap"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"
JAIL_REFUSED_HINT = (
    "run as root, or allow unprivileged user namespaces (sysctl "
    "kernel.unprivileged_userns_clone=1); in Docker give the worker the grants the shipped "
    "docker-compose.yml gives it (CAP_SYS_ADMIN, the seccomp profile "
    "docker/seccomp-bwrap.json, AppArmor unconfined; README, Deployment)"
)
SYSTEM_LIBS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib")
TOP_LIBS = ("/lib", "/lib64", "/lib32", "/libx32")
DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # .../evalsuite
# parts of the package the zygote never imports that hold answers (the demo's canonical
# solutions, training sets with their solutions, test variants of canonical solutions)
ANSWER_BEARING = ("demo", "training", "testing")
_PATHS_PROBE = (
    "import json, sys; "
    "print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.executable, *sys.path]))"
)


def bwrap_path() -> str | None:
    return shutil.which(BWRAP, path="/usr/bin:/bin:/usr/local/bin:" + os.environ.get("PATH", ""))


def zygote_env() -> dict[str, str]:
    """The zygote's whole environment: nothing of ours (secrets, proxies) goes in."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(PACKAGE_DIR.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@functools.cache
def python_dirs() -> list[str]:
    """The directories the zygote's interpreter imports from, as a minimal set.

    Asked of the interpreter itself, started with the zygote's environment (our own
    ``sys.path`` may hold a test runner's additions); once per process, as they cannot
    change while it runs. Where an entry is the checkout that holds the ``evalsuite``
    package, only the package directory is taken.
    """
    out = subprocess.run(
        [sys.executable, "-c", _PATHS_PROBE],
        env=zygote_env(),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    entries = json.loads(out.stdout)
    executable = os.path.realpath(entries[3])
    found = {os.path.dirname(os.path.dirname(executable))}  # the interpreter's own prefix
    checkout = str(PACKAGE_DIR.parent)
    for entry in entries[:3] + entries[4:]:
        if not entry or not os.path.exists(entry):
            continue
        real = os.path.realpath(entry)
        found.add(str(PACKAGE_DIR) if real == checkout else real)
    found.add(str(PACKAGE_DIR))
    keep: list[str] = []
    for d in sorted(found):
        if not any(d == k or d.startswith(k + os.sep) for k in keep):
            keep.append(d)
    return keep


def _system_libraries() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_LIBS:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    for path in TOP_LIBS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    cache = "/etc/ld.so.cache"  # where the loader finds multiarch libraries
    if os.path.exists(cache):
        args += [*_parents([cache]), "--ro-bind", cache, cache]
    return args


def _parents(dirs: Iterable[str]) -> list[str]:
    """Directories on the way to the binds, made 0755 (bwrap makes them 0700: no way in
    for a program's own uid)."""
    parents = {str(p) for d in dirs for p in Path(d).parents if str(p) != "/"}
    args: list[str] = []
    for p in sorted(parents, key=lambda p: p.count("/")):
        args += ["--perms", "0755", "--dir", p]
    return args


def jail_command(
    command: list[str], *, dirs: Iterable[str], hide: Iterable[str], as_root: bool
) -> list[str]:
    """The bwrap command line that runs ``command`` in the allowlisted jail."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise FileNotFoundError(f"bwrap not found: {INSTALL_HINT}")
    args = [bwrap, "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-pid"]
    if not as_root:  # root of a user namespace of our own, with that namespace's capabilities
        args += ["--unshare-user", "--uid", "0", "--gid", "0"]
    args += ["--die-with-parent", "--new-session", "--cap-add", "ALL"]
    args += _system_libraries()
    dirs = list(dirs)
    later = under_tmp(dirs)  # bound once the fresh tmpfs is there
    args += _parents([d for d in dirs if d not in later])
    for d in dirs:
        if d not in later:
            args += ["--ro-bind", d, d]
    args += ["--perms", "0755", "--dir", "/dev"]  # made 0700 otherwise: no device for a uid
    for device in DEVICES:
        if os.path.exists(device):
            args += ["--dev-bind", device, device]
    args += ["--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    args += _parents(later)
    for d in later:  # a checkout or virtualenv under /tmp
        args += ["--ro-bind", d, d]
    args += ["--symlink", "../tmp", "/var/tmp"]
    for path in hide:
        if any(path == d or path.startswith(d + os.sep) for d in dirs):
            if os.path.isdir(path):
                args += ["--tmpfs", path, "--remount-ro", path]
            elif os.path.isfile(path):
                args += ["--ro-bind", "/dev/null", path]
    for path in (str(PACKAGE_DIR / d) for d in ANSWER_BEARING):
        if os.path.isdir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
    args += ["--remount-ro", "/"]  # the root tmpfs: nobody writes there, in any mode
    return [*args, "--chdir", "/", *command]


def under_tmp(dirs: Iterable[str]) -> list[str]:
    """Allowed directories that a program's own fresh /tmp would cover (bound back there)."""
    return [d for d in dirs if d.startswith(("/tmp/", "/dev/shm/"))]


def readable_by_others(dirs: Iterable[str]) -> bool:
    """Whether another uid can reach every directory (basic mode: slot uids only then)."""
    for d in dirs:
        current = "/"
        for part in d.strip("/").split("/"):
            current = os.path.join(current, part)
            if not os.stat(current).st_mode & 0o001:
                return False
    return True
