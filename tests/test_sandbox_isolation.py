"""What a program in the sandbox can reach of the host: nothing outside the allowlist.

Each check asserts the property itself, from outside the sandbox where it can be seen from
there: a listening socket file that receives no connection, host files whose bytes never
reach the report, a SysV segment absent from the host and from the next program, a cgroup
peak under the configured cap, no cgroup or process left over. The same programs run as
root (the scorer's usual case; CI runs as root) and as an ordinary user (``nobody``, in a
mount namespace where the interpreter's directories are reachable for it, as they are on a
machine where Python is installed for everyone).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from evalsuite.scoring.sandbox.box import ExitInfo, Job, Sandbox
from evalsuite.scoring.sandbox.cgroup import PREFIX
from evalsuite.testing.collector import Collector

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
CHECKOUT = Path(__file__).resolve().parents[1]
SHARED_DATA = CHECKOUT.parent / "shared" / "data"
MARK = uuid.uuid4().hex[:12]
SHM_KEY = 0x5E000000 + int(MARK[:5], 16)


def walk_program(allowed: list[str]) -> str:
    """Walks the whole visible tree; prints what lies outside ``allowed`` and every socket."""
    return f"""
import json, os, stat
allowed = {allowed!r}
def inside(p):
    return any(p == a or p.startswith(a + '/') or a.startswith(p + '/') for a in allowed)
outside, sockets, files = [], [], 0
for top, dirs, names in os.walk('/'):
    if top.startswith('/proc'):
        dirs[:] = []
        continue
    for name in dirs + names:
        path = os.path.join(top, name)
        files += 1
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode):
            sockets.append(path)
        if not inside(path):
            outside.append(path)
print(json.dumps({{"outside": outside[:50], "sockets": sockets[:50], "seen": files}}))
"""


def probe_programs(secret_files: list[str], socket_file: str, allowed: list[str]) -> dict:
    return {
        "walk": walk_program(allowed),
        "read_host_files": f"""
import json
found = {{}}
for path in {secret_files!r}:
    try:
        found[path] = open(path, 'rb').read(200).decode('latin-1')
    except OSError as e:
        found[path] = type(e).__name__
print(json.dumps(found))
""",
        "connect_socket_files": f"""
import glob, json, socket
tried = {{}}
for path in [{socket_file!r}, *glob.glob('/run/**', recursive=True), *glob.glob('/var/run/**'),
             '/run/postgresql/.s.PGSQL.5432', '/var/run/docker.sock', '/tmp/.X11-unix/X0']:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        tried[path] = 'CONNECTED'
    except OSError as e:
        tried[path] = type(e).__name__
print(json.dumps(tried))
""",
        "make_shm": f"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget({SHM_KEY}, 4096, 0o1666)  # IPC_CREAT | 0666, left behind on purpose
print(json.dumps({{"shmid": shmid}}))
""",
        "find_shm": f"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
print(json.dumps({{"shmid": libc.shmget({SHM_KEY}, 0, 0), "errno": ctypes.get_errno(),
                  "listed": open('/proc/sysvipc/shm').read().count('\\n') - 1}}))
""",
        "whoami": """
import json, os
status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines())
print(json.dumps({"uid": os.getuid(), "cap_eff": status['CapEff'].strip(),
                  "cap_bnd": status['CapBnd'].strip(), "pids": sorted(os.listdir('/proc'))}))
""",
    }


def run(programs: dict[str, str], **kwargs) -> tuple[dict[str, tuple[ExitInfo, str]], dict]:
    """Run each program once, one after another (so a later one can look for leftovers)."""
    out: dict[str, tuple[ExitInfo, str]] = {}
    names = list(programs)
    with Sandbox({}, workers=1, capture_bytes=1 << 20, **kwargs) as box:
        box.run(
            [Job("script", code, 60) for code in programs.values()],
            lambda i, job: Collector(),
            lambda i, result: out.update({names[i]: (result[0], result[0].output)}),
        )
        info = box.info
    return out, info


def allowlist() -> list[str]:
    """What the jail may show, derived here from the interpreter (not from the jail code)."""
    import sysconfig

    prefixes = {sys.prefix, sys.base_prefix, os.path.realpath(sys.executable)}
    prefixes |= {p for p in sysconfig.get_paths().values()}
    allowed = {os.path.realpath(p) for p in prefixes}
    allowed |= {str(CHECKOUT / "evalsuite"), "/usr/lib", "/usr/lib64", "/usr/lib32"}
    allowed |= {"/usr/local/lib", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache"}
    allowed |= {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/shm"}
    allowed |= {"/tmp", "/var/tmp", "/proc"}  # /proc: its own PID namespace's
    return sorted(allowed)


class SocketTrap:
    """A listening Unix socket file anybody may connect to; records every connection."""

    def __init__(self, directory: Path) -> None:
        directory.chmod(0o755)
        self.path = str(directory / f"trap-{MARK}.sock")
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def secret_files(tmp: Path) -> list[str]:
    """Host files with known bytes: a world-readable copy of 'answers', data, the checkout."""
    tmp.chmod(0o755)
    secret = tmp / "answers.txt"
    secret.write_text(f"SECRET-{MARK}")
    secret.chmod(0o644)
    files = [str(secret), str(CHECKOUT / "pyproject.toml"), "/etc/passwd", "/etc/hostname"]
    data = next(SHARED_DATA.glob("humaneval_plus/*"), None) if SHARED_DATA.is_dir() else None
    return files + ([str(data)] if data else [])


def check_probe(results: dict[str, tuple[ExitInfo, str]], trap_connections: int) -> dict:
    decoded = {name: json.loads(out.strip().splitlines()[-1]) for name, (_, out) in results.items()}
    walk = decoded["walk"]
    assert walk["seen"] > 100  # it did look around
    assert walk["outside"] == [], walk["outside"]
    assert walk["sockets"] == []
    assert set(decoded["read_host_files"].values()) == {"FileNotFoundError"}  # not even there
    assert "CONNECTED" not in decoded["connect_socket_files"].values()
    assert trap_connections == 0
    assert decoded["make_shm"]["shmid"] >= 0  # it could make one, in its own namespace
    assert decoded["find_shm"]["shmid"] == -1 and decoded["find_shm"]["listed"] == 0
    return decoded


def host_shm_keys() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines}


def leftover_cgroups() -> list[str]:
    return [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/**/{PREFIX}{os.getpid()}-*")]


@ROOT_ONLY
def test_root_jail_reaches_nothing_of_the_host(tmp_path: Path) -> None:
    trap = SocketTrap(tmp_path)
    try:
        files = secret_files(tmp_path)
        results, info = run(probe_programs(files, trap.path, allowlist()))
    finally:
        trap.close()
    decoded = check_probe(results, trap.connections)
    assert SHM_KEY not in host_shm_keys()
    me = decoded["whoami"]
    assert me["uid"] >= 0x40000000 and me["cap_eff"] == "0000000000000000"
    assert [p for p in me["pids"] if p.isdigit()] == ["1"]  # alone in its PID namespace
    assert info["namespaces"] is True and "bubblewrap" in info["filesystem"]
    assert leftover_cgroups() == []


FORK_AND_TOUCH = """
import os, json
children = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(80 * 2**20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        import time
        time.sleep(1)
        os._exit(0)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
print(json.dumps(codes))
"""


@ROOT_ONLY
def test_memory_cap_covers_every_process_of_a_program() -> None:
    """4 children x 80 MiB under a 256 MiB cap: the cgroup's own peak stays under it.

    Each child alone must stay under the per-process RLIMIT_AS (the same 256 MiB), which
    also counts the interpreter's own address space: 137 MiB on one machine here, where
    120 MiB children got MemoryError from the rlimit before the cgroup was ever reached."""
    cap = 256 * 2**20
    results, info = run({"fork_and_touch": FORK_AND_TOUCH}, memory_bytes=cap)
    exit_info, output = results["fork_and_touch"]
    assert info["memory"].startswith("cgroup"), info["memory"]
    assert exit_info.peak_memory_bytes is not None
    assert 80 * 2**20 < exit_info.peak_memory_bytes <= cap
    codes = json.loads(output.strip().splitlines()[-1])
    assert codes.count(0) < 4  # not every child got its memory: the cap held across them
    assert leftover_cgroups() == []


def _nobody_command(script: Path) -> list[str]:
    """Run ``script`` as nobody where the interpreter, checkout and its folder are reachable."""
    import sysconfig

    need = {sys.prefix, sys.base_prefix, str(CHECKOUT), str(script.parent)}
    need |= {os.path.realpath(p) for p in sysconfig.get_paths().values()}
    args = ["bwrap", "--dev-bind", "/", "/", "--cap-add", "ALL"]
    for d in sorted(need):  # a closed directory on the way (pyenv under /root) is opened
        closed = [p for p in [*reversed(Path(d).parents), Path(d)][1:] if not p.stat().st_mode & 1]
        if closed:
            args += ["--perms", "0755", "--tmpfs", str(closed[0])]
            for parent in [*reversed(Path(d).parents), Path(d)]:
                if closed[0] in parent.parents:
                    args += ["--perms", "0755", "--dir", str(parent)]
    for d in sorted(need):
        args += ["--bind" if d == str(script.parent) else "--ro-bind", d, d]
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return [*args, *setpriv, "--", sys.executable, str(script)]


@ROOT_ONLY
def test_ordinary_user_gets_the_same_jail(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop to an ordinary user")
    work = tmp_path / "nobody"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    trap = SocketTrap(tmp_path)
    files = secret_files(tmp_path)
    script = work / "probe.py"
    programs = probe_programs(files, trap.path, allowlist())
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(CHECKOUT / 'tests')!r})\n"
        "from test_sandbox_isolation import run\n"
        f"results, info = run({programs!r})\n"
        "print(json.dumps({'results': {k: v[1] for k, v in results.items()}, 'info': info}))\n"
    )
    script.chmod(0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work)}
    try:
        done = subprocess.run(
            _nobody_command(script), capture_output=True, text=True, env=env, timeout=600
        )
    finally:
        trap.close()
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = {k: (None, v) for k, v in report["results"].items()}
    decoded = check_probe(results, trap.connections)  # type: ignore[arg-type]
    assert report["info"]["namespaces"] is True, report["info"]
    assert report["info"]["root"] is False
    me = decoded["whoami"]
    assert me["cap_eff"] == "0000000000000000" and me["cap_bnd"] == "0000000000000000"
    assert [p for p in me["pids"] if p.isdigit()] == ["1"]
    assert SHM_KEY not in host_shm_keys()


IMPORTS = f"""
import json, platformdirs, numpy.polynomial, scipy.special, probe_mod_{MARK}
print(json.dumps([probe_mod_{MARK}.VALUE, float(scipy.special.gamma(5))]))
"""


def test_interpreter_under_tmp_imports_what_the_zygote_did_not(tmp_path: Path) -> None:
    """A virtualenv under /tmp (a CI clone's) stays importable under each program's own /tmp."""
    import site
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], str(CHECKOUT)]
    (purelib / "evalsuite-parent.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    (purelib / f"probe_mod_{MARK}.py").write_text("VALUE = 'from-tmp'\n")
    script = tmp_path / "imports.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(CHECKOUT / 'tests')!r})\n"
        "from test_sandbox_isolation import run\n"
        f"results, info = run({{'imports': {IMPORTS!r}}})\n"
        "print(results['imports'][1], info['namespaces'])\n"
    )
    done = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(purelib).startswith("/tmp/")
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2]) == ["from-tmp", 24.0], done.stdout
    assert lines[-1].strip() == "True"  # in the jail, each program on its own /tmp


@ROOT_ONLY
def test_slots_left_by_a_killed_scorer_are_removed() -> None:
    from evalsuite.scoring.sandbox.cgroup import _own, _v1_mount

    parent = _v1_mount("memory") / (_own("memory") or "/").lstrip("/")
    stale = parent / f"{PREFIX}999999999-deadbeef"  # no such pid: its scorer is gone
    (stale / "slot-0").mkdir(parents=True)
    with Sandbox({}, workers=1) as box:
        assert box.info["memory"].startswith("cgroup v1")
        assert not stale.exists()


@pytest.mark.parametrize("bwrap", [None, "/bin/false"], ids=["missing", "refused"])
def test_without_a_jail_auto_falls_back_and_namespaces_refuses(monkeypatch, bwrap) -> None:
    """No bwrap, or one that cannot start (user namespaces disabled): basic mode, said so."""
    from evalsuite.scoring.sandbox import jail as sandbox_jail
    from evalsuite.scoring.sandbox.box import SandboxError

    monkeypatch.setattr(sandbox_jail, "bwrap_path", lambda: bwrap)
    results, info = run({"whoami": probe_programs([], "", [])["whoami"]})
    assert info["namespaces"] is False and info["why_not"]
    if bwrap is None:
        assert "apt-get install bubblewrap" in info["why_not"]
    else:  # bwrap refused: the reason says what to change
        assert "unprivileged_userns_clone" in info["why_not"]
    pids = json.loads(results["whoami"][1].strip().splitlines()[-1])["pids"]
    assert len([p for p in pids if p.isdigit()]) > 1  # the host's processes: no jail indeed
    with pytest.raises(SandboxError, match="namespace isolation requested but unavailable"):
        Sandbox({}, workers=1, isolation="namespaces")
