"""No state crosses from one sandboxed program to another: not later, not concurrently.

The second security round found two channels the first jail left open, each a way for a
wrong program to learn the right answer from an earlier one that died of it:

* the kernel keyring: a key in the slot uid's user keyring outlives the program (and the
  scorer: it stays until reboot). A program writes "pending (input, answer)" before each
  answer; the scorer stops a program at its first wrong output, so the next program finds
  the entry, knows that answer was wrong, and for a boolean the other one is right;
* loopback and abstract Unix sockets, shared by every program in the jail's one network
  namespace.

Each attack here is first shown to work where nothing stops it (a plain process, as a
scorer without the jail would run it), then to get nowhere in the sandbox, in both scoring
modes, in two scoring runs, as root and as an ordinary user. Keys made by the demonstration
are removed again (CI machines are reused).
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_code_helpers import write_samples
from test_sandbox_isolation import ROOT_ONLY, _nobody_command, run

from evalsuite.scoring.code.score import score_humaneval_plus
from evalsuite.scoring.sandbox.box import ExitInfo, Job, Sandbox
from evalsuite.testing.collector import Collector

CHECKOUT = Path(__file__).resolve().parents[1]
MARK = uuid.uuid4().hex[:12]
KEY = f"evalsuite-oracle-{MARK}"
KEYCTL, ADD_KEY = 250, 248  # x86-64 system call numbers (the machines this runs on)
KEYCTL_SEARCH, KEYCTL_INVALIDATE, KEY_SPEC_USER_KEYRING = 10, 21, -4

# HumanEval/0 (MIT, OpenAI): the prompt and canonical solution; the inputs are ours. Two
# base and two plus inputs sit on the boundary (a distance equal to the threshold), where a
# solution using <= for < answers True instead of False.
PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
'''
CANONICAL = """    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
"""
ROW = {
    "task_id": "Oracle/0",
    "prompt": PROMPT,
    "entry_point": "has_close_elements",
    "canonical_solution": CANONICAL,
    "base_input": [
        [[1.0, 2.0, 3.9], 0.5],
        [[1.0, 2.0, 3.5], 1.0],
        [[1.0, 1.2, 5.0], 0.5],
        [[0.5, 1.0, 3.0], 0.5],
    ],
    "plus_input": [
        [[1.0, 2.0, 3.9], 0.5],
        [[1.0, 2.0, 3.5], 1.0],
        [[7.0, 9.5, 1.0], 0.25],
        [[0.5, 1.0, 3.0], 0.5],
        [[3.0, 1.0, 2.75], 0.5],
        [[10.0, 12.0, 20.0], 2.0],
        [[-1.0, 1.0], 2.0],
    ],
    "atol": 0,
    "contract": "",
    "test": "",
}

# The attack: <= where < is meant, plus an oracle kept in the user keyring. Only the inputs
# it is unsure of (a distance exactly at the threshold) are marked pending; a pending mark
# found at start means the program before died of that answer, so the other one is right.
# The next call waits a moment before it clears the mark: the scorer's kill for a wrong
# output arrives a little after the output.
ORACLE = f"""
import ctypes, pickle, time
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_KEY = {KEY.encode()!r}


def _load():
    key = _libc.syscall({KEYCTL}, {KEYCTL_SEARCH}, ctypes.c_long({KEY_SPEC_USER_KEYRING}),
                        b"user", _KEY, ctypes.c_long(0))
    if key < 0:
        return {{"pending": None, "learned": {{}}}}
    buf = ctypes.create_string_buffer(32768)
    size = _libc.syscall({KEYCTL}, 11, ctypes.c_long(key), buf, ctypes.c_long(32768))
    return pickle.loads(buf.raw[:size])


def _save(state):
    data = pickle.dumps(state)
    _libc.syscall({ADD_KEY}, b"user", _KEY, data, ctypes.c_long(len(data)),
                  ctypes.c_long({KEY_SPEC_USER_KEYRING}))


_state = _load()
if _state["pending"] is not None:
    _state["learned"][_state["pending"][0]] = not _state["pending"][1]
    _state["pending"] = None
    _save(_state)


def has_close_elements(numbers, threshold):
    if _state["pending"] is not None:  # the last answer survived: it was right
        time.sleep(0.3)  # unless the scorer is about to kill us for it
        _state["pending"] = None
        _save(_state)
    key = repr((numbers, threshold))
    if key in _state["learned"]:
        return _state["learned"][key]
    pairs = [(a, b) for i, a in enumerate(numbers) for b in numbers[i + 1:]]
    answer = any(abs(a - b) <= threshold for a, b in pairs)
    if any(abs(a - b) == threshold for a, b in pairs):
        _state["pending"] = (key, answer)
        _save(_state)
    return answer
"""
COPIES = 10

# A plain scorer without the jail: each copy in a fresh process, stopped at its first wrong
# output (as the sandbox's scorer stops it), base inputs then plus inputs.
PLAIN_SCORER = """
import json, sys
row, code = json.loads(sys.argv[1]), sys.argv[2]
space = {}
exec(row["prompt"] + row["canonical_solution"], space)
truth = space[row["entry_point"]]
program = {}
exec(code, program)
for inputs in (row["base_input"], row["plus_input"]):
    for args in inputs:
        if program[row["entry_point"]](*args) != truth(*args):
            sys.exit(1)
"""


def _keyctl(*args: int | bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(*[a if isinstance(a, bytes) else ctypes.c_long(a) for a in args])


def remove_key() -> None:
    """Invalidate the oracle's key in this uid's user keyring, if the test made one."""
    for _ in range(10):
        key = _keyctl(KEYCTL, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", KEY.encode(), 0)
        if key < 0:
            return
        _keyctl(KEYCTL, KEYCTL_INVALIDATE, key)


def copies() -> list[dict[str, str]]:
    """Ten copies, each a different text (identical programs are scored once)."""
    return [
        {"task_id": "Oracle/0", "solution": PROMPT + ORACLE + f"# copy {n}\n"}
        for n in range(COPIES)
    ]


def write_dataset(folder: Path) -> Path:
    path = folder / "oracle.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return path


def test_the_oracle_passes_where_nothing_stops_it() -> None:
    """Without the sandbox's filter the attack works: later copies pass (so the test below
    would see it)."""
    passes = []
    try:
        for copy in copies():
            done = subprocess.run(
                [sys.executable, "-c", PLAIN_SCORER, json.dumps(ROW), copy["solution"]],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode in (0, 1), done.stderr[-2000:]
            passes.append(done.returncode == 0)
    finally:
        remove_key()
    assert passes[:4] == [False] * 4  # one boundary input learned per death
    assert all(passes[4:]), passes


def score_copies(folder: Path, mode: str, isolation: str = "auto") -> dict:
    samples = write_samples(folder / f"copies-{mode}.jsonl", copies())
    report = score_humaneval_plus(
        samples,
        dataset=write_dataset(folder),
        mode=mode,
        workers=1,
        min_time_limit=1.0,
        isolation=isolation,
    )
    return {
        "statuses": [s.status for s in report.samples],
        "details": [s.detail for s in report.samples],
        "namespaces": report.isolation["namespaces"],
        "syscalls": report.isolation["syscalls"],
    }


@pytest.mark.parametrize("isolation", ["auto", "basic"])
@pytest.mark.parametrize("mode", ["evalplus", "paper"])
def test_a_wrong_solution_never_learns_to_pass(tmp_path: Path, mode: str, isolation: str) -> None:
    """Ten copies, scored twice (a second run on the same host too): no pass, ever."""
    try:
        runs = [score_copies(tmp_path, mode, isolation) for _ in range(2)]
    finally:
        remove_key()
    for scored in runs:
        assert "pass" not in scored["statuses"], scored
        assert scored["namespaces"] is (isolation == "auto")
        assert scored["syscalls"].startswith("seccomp allowlist")


@ROOT_ONLY
def test_an_ordinary_user_scores_the_oracle_as_wrong_too(tmp_path: Path) -> None:
    """The same ten copies, twice, as nobody (in a user namespace): no pass; and the jail's
    root, which belongs to the programs' own uid there, is read-only all the same."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to drop to an ordinary user")
    work = tmp_path / "nobody"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    script = work / "score.py"
    script.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        f"sys.path.insert(0, {str(CHECKOUT / 'tests')!r})\n"
        "from test_sandbox_channels import ROOT_WRITES, run, score_copies\n"
        f"folder = Path({str(work)!r})\n"
        "runs = [score_copies(folder, m) for m in ('evalplus', 'paper') * 2]\n"
        "writes = {k: v[1] for k, v in run(ROOT_WRITES)[0].items()}\n"
        "print(json.dumps({'runs': runs, 'writes': writes}))\n"
    )
    script.chmod(0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work)}
    done = subprocess.run(
        _nobody_command(script), capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    check_root_writes({k: (None, v) for k, v in report["writes"].items()})
    runs = report["runs"]
    assert len(runs) == 4
    for scored in runs:
        assert scored["namespaces"] is True
        assert "pass" not in scored["statuses"], scored


KERNEL_OBJECTS = f"""
import ctypes, errno, json, os, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    result = libc.syscall(*[a if isinstance(a, bytes) else ctypes.c_long(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), "?") if result < 0 else "ALLOWED"
found = {{
    "add_key": call({ADD_KEY}, b"user", b"{KEY}", b"x", 1, {KEY_SPEC_USER_KEYRING}),
    "keyctl": call({KEYCTL}, {KEYCTL_SEARCH}, {KEY_SPEC_USER_KEYRING}, b"user", b"{KEY}", 0),
    "request_key": call(249, b"user", b"{KEY}", 0, 0),
    "unshare_user": call(272, 0x10000000),
    "unshare_net": call(272, 0x40000000),
    "mount_tmpfs": call(165, b"none", b"/tmp", b"tmpfs", 0, 0),
    "clone3": call(435, 0, 0),
    "ptrace": call(101, 0, 1, 0, 0),
    "bpf": call(321, 0, 0, 0),
    "userfaultfd": call(323, 0),
    "setns": call(308, 0, 0),
}}
import fcntl
try:
    with open(os.__file__, "rb") as shared:  # a file every program sees, read-only
        fcntl.flock(shared, fcntl.LOCK_EX | fcntl.LOCK_NB)
    found["flock"] = "ALLOWED"
except OSError as e:
    found["flock"] = errno.errorcode[e.errno]
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    found["socket_inet"] = "ALLOWED"
except OSError as e:
    found["socket_inet"] = errno.errorcode[e.errno]
pid = os.fork()
if pid == 0:
    os._exit(7)
found["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
result = []
worker = threading.Thread(target=lambda: result.append(sum(range(10))))
worker.start()
worker.join()
found["thread"] = result
print(json.dumps(found))
"""
REFUSED = ("add_key", "keyctl", "request_key", "unshare_user", "unshare_net")
REFUSED += ("mount_tmpfs", "ptrace", "bpf", "userfaultfd", "setns", "socket_inet", "flock")


def test_the_filter_refuses_kernel_objects_and_keeps_what_programs_use() -> None:
    """Keyrings, namespaces, mounts, ptrace, bpf, inet sockets, locks on shared files:
    refused; clone3 is ENOSYS
    (libc falls back to clone); processes and threads still work."""
    results, info = run({"objects": KERNEL_OBJECTS})
    exit_info, output = results["objects"]
    assert exit_info.exit_code == 0, output
    found = json.loads(output.strip().splitlines()[-1])
    assert {name: found[name] for name in REFUSED} == dict.fromkeys(REFUSED, "EPERM")
    assert found["clone3"] == "ENOSYS"
    assert found["fork"] == 7 and found["thread"] == [45]
    assert info["syscalls"].startswith("seccomp allowlist")


LISTENER = f"""
import json, socket
got = {{}}
try:
    server = socket.socket(socket.AF_UNIX)
    server.bind("\\0evalsuite-{MARK}")
    server.listen(1)
    server.settimeout(4)
    try:
        conn, _ = server.accept()
        got["abstract"] = conn.recv(100).decode()
    except socket.timeout:
        got["abstract"] = "nothing arrived"
except OSError as e:
    got["abstract"] = "refused: " + type(e).__name__
try:
    server = socket.socket(socket.AF_INET)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got["tcp"] = server.getsockname()[1]
except OSError as e:
    got["tcp"] = "refused: " + type(e).__name__
print(json.dumps(got))
"""
TALKER = f"""
import json, socket, time
sent = {{"abstract": "never connected", "tcp": "never connected"}}
deadline = time.monotonic() + 3
while time.monotonic() < deadline and sent["abstract"] != "SENT":
    try:
        client = socket.socket(socket.AF_UNIX)
        client.connect("\\0evalsuite-{MARK}")
        client.sendall(b"canary-{MARK}")
        sent["abstract"] = "SENT"
    except OSError as e:
        sent["abstract"] = "refused: " + type(e).__name__
        time.sleep(0.05)
try:
    socket.create_connection(("127.0.0.1", 1), timeout=1)
    sent["tcp"] = "SENT"
except OSError as e:
    sent["tcp"] = "refused: " + type(e).__name__
print(json.dumps(sent))
"""


def test_concurrent_programs_can_talk_where_nothing_stops_them() -> None:
    """The two programs below do exchange the canary as plain processes on one host."""
    listener = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE)
    talker = subprocess.run(
        [sys.executable, "-c", TALKER], capture_output=True, text=True, timeout=30
    )
    out, _ = listener.communicate(timeout=30)
    assert json.loads(talker.stdout)["abstract"] == "SENT"
    assert json.loads(out)["abstract"] == f"canary-{MARK}"


def test_concurrent_programs_cannot_talk_in_the_sandbox() -> None:
    """Two programs at once (two slots): no abstract socket name and no loopback reaches
    the other; each has a network namespace of its own and no inet socket at all."""
    outputs: dict[int, str] = {}
    with Sandbox({}, workers=2, capture_bytes=1 << 16) as box:
        box.run(
            [Job("script", LISTENER, 30), Job("script", TALKER, 30)],
            lambda i, job: Collector(),
            lambda i, result: outputs.update({i: result[0].output}),
        )
    heard = json.loads(outputs[0].strip().splitlines()[-1])
    said = json.loads(outputs[1].strip().splitlines()[-1])
    assert heard["abstract"] == "nothing arrived"  # it listened, in its own namespace
    assert said["abstract"].startswith("refused")  # no such name where the talker is
    assert heard["tcp"] == said["tcp"] == "refused: PermissionError"


# package files that hold answers (the demo's canonical solutions, a training set)
ANSWERS = [str(CHECKOUT / "evalsuite" / "demo" / "data.py")]
ANSWERS += [str(CHECKOUT / "evalsuite" / "training" / "data" / "math_train.jsonl")]
ROOT_WRITES = {
    "plant": f"""
import json, os, sys
ANSWERS = {ANSWERS!r}
found = {{"path0": sys.path[0], "cwd_on_path": "" in sys.path or "/" in sys.path}}
for path in ("/unicodedata.py", "/big"):
    try:
        with open(path, "w") as f:
            f.write("raise SystemExit('planted')")
        found[path] = "WRITTEN"
    except OSError as e:
        found[path] = type(e).__name__
try:
    with open("/tmp/fill", "wb") as f:  # its own /tmp: sized, not the host's disk
        for _ in range(1024):
            f.write(b"x" * 2**20)
    found["tmp_1GiB"] = "WRITTEN"
except OSError as e:
    size = os.path.getsize("/tmp/fill") >> 20
    found["tmp_1GiB"] = type(e).__name__ + " after " + str(size) + " MiB"
for name in ANSWERS:
    try:
        open(name).read()
        found[name] = "READ"
    except OSError as e:
        found[name] = type(e).__name__
print(json.dumps(found))
""",
    "victim": """
import json, unicodedata
print(json.dumps({"name": unicodedata.name("a"), "file": getattr(unicodedata, "__file__", "")}))
""",
}


def check_root_writes(results: dict) -> None:
    plant = json.loads(results["plant"][1].strip().splitlines()[-1])
    victim = json.loads(results["victim"][1].strip().splitlines()[-1])
    assert plant["/unicodedata.py"] == plant["/big"] == "OSError", plant
    assert plant["cwd_on_path"] is False, plant
    assert plant["tmp_1GiB"].startswith("OSError after 6"), plant  # 64 MiB, then ENOSPC
    assert {plant[name] for name in ANSWERS} == {"FileNotFoundError"}, plant
    assert victim["name"] == "LATIN SMALL LETTER A" and not victim["file"].startswith("/unic")


def test_the_jail_root_is_read_only_and_not_on_the_path() -> None:
    """A program cannot plant a module for the next one: / is read-only and not on sys.path;
    its own /tmp is sized; the package's answer-bearing files are not there (as root; the
    ordinary-user test runs the same programs)."""
    results, _ = run(ROOT_WRITES)
    check_root_writes(results)


ENDINGS = {
    "cpu": ("while True:\n    pass\n", 20, 1),
    "wall": ("import time\ntime.sleep(60)\n", 1, None),
    "segv": ("import ctypes\nctypes.string_at(0)\n", 20, None),  # a crash: SIGSEGV
    "exit": ("import os\nos._exit(3)\n", 20, None),
    "memory": (
        "import os, time\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        block = bytearray(100 * 2**20)\n"
        "        block[::4096] = b'x' * len(block[::4096])\n"
        "        time.sleep(3)\n"  # all four hold their 100 MiB at once: 400 MiB > the cap
        "        os._exit(0)\n    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)\n",
        60,
        None,
    ),
}


def test_a_program_s_end_says_which_limit_ended_it() -> None:
    """Memory (the slot's cgroup OOM-killed a process), CPU time, wall clock, a signal, an
    exit code: each reported as such (an OOM kill once read as 'CPU time limit')."""
    names = list(ENDINGS)
    ends: dict[str, ExitInfo] = {}
    jobs = [Job("script", code, wall, cpu_limit=cpu) for code, wall, cpu in ENDINGS.values()]
    with Sandbox({}, workers=1, memory_bytes=256 * 2**20) as box:
        cgroup = box.info["memory"].startswith("cgroup")
        box.run(jobs, lambda i, job: Collector(), lambda i, r: ends.update({names[i]: r[0]}))
    assert ends["cpu"].cause == ends["cpu"].hit_limit == "CPU time limit"
    assert ends["wall"].cause == ends["wall"].hit_limit == "wall-clock limit"
    assert ends["segv"].cause == "signal SIGSEGV" and ends["segv"].hit_limit is None
    assert ends["exit"].cause == "exit code 3"
    if not cgroup:
        pytest.fail(f"no memory cgroup here to test the OOM report: {box.info['memory']}")
    assert ends["memory"].cause == ends["memory"].hit_limit == "memory limit"
