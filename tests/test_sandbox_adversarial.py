"""Hostile programs: none escapes, none passes, and scoring goes on with the next sample.

Every program below is scored as a HumanEval+ sample of the toy ``add(a, b)`` task (evalplus
mode, 1 s per input), in one run. Around it the test sets traps it checks afterwards: a
canary file in its own temporary directory (not to be changed or deleted), a TCP listener
on 127.0.0.1 (no connection may arrive), a secret in the environment and in a file (neither
may show up in any report), marker paths on the host (not to be created), and afterwards no
process of the run may be left (programs start daemons, fork bombs, exec ``sleep``).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from pathlib import Path

import pytest
from test_code_helpers import ADD_PROMPT, write_samples, write_toy_dataset

from evalsuite.scoring.code.score import score_humaneval_plus

MARK = f"evalsuite-escape-{uuid.uuid4().hex[:12]}"
SLEEPER = "import time; time.sleep(600)"  # a long-lived process with MARK in its argv
SECRET = f"s3cret-{uuid.uuid4().hex}"
FN = ADD_PROMPT  # every program defines add(a, b) unless it is about not getting there


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


def hostile(canary: Path, secret_file: Path, dataset: Path, port: int) -> dict[str, str]:
    host_marker = f"/tmp/{MARK}"
    return {
        "fork_bomb": FN + "    import posix\n    while True:\n        posix.fork()\n",
        "fork_bomb_swallow": FN
        + "    import posix\n    while True:\n        try:\n            posix.fork()\n"
        "        except OSError:\n            pass\n",
        "memory_bomb": FN + "    x = []\n    while True:\n        x.append(bytearray(2**27))\n",
        "busy_loop_module": "while True:\n    pass\n" + FN + "    return a + b\n",
        "sleep_forever_module": "import time\ntime.sleep(10**6)\n" + FN + "    return a + b\n",
        "ignore_alarm": FN
        + "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    while True:\n        pass\n",
        "swallow_timeout": FN + "    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass\n",
        "write_canary": f"import posix\nfd = posix.open({str(canary)!r}, posix.O_WRONLY | "
        f"posix.O_TRUNC)\nposix.write(fd, b'pwned')\n" + FN + "    return a + b\n",
        "delete_canary": f"import posix\nposix.unlink({str(canary)!r})\n"
        + FN
        + "    return a + b\n",
        "write_host_tmp": f"import posix\nfd = posix.open({host_marker!r}, posix.O_WRONLY | "
        "posix.O_CREAT)\n" + FN + "    return 0\n",
        "write_root_fs": f"import posix\nfd = posix.open('/var/{MARK}', posix.O_WRONLY | "
        "posix.O_CREAT)\n" + FN + "    return 0\n",
        "read_env": FN + "    import os\n    raise RuntimeError(repr(dict(os.environ)))\n",
        "read_secret_file": FN
        + f"    import io\n    raise RuntimeError(io.open({str(secret_file)!r})"
        ".read())\n",
        "read_dataset": FN
        + f"    import io\n    raise RuntimeError(io.open({str(dataset)!r}).read())\n",
        "read_other_processes": FN + "    import io, os\n    found = []\n"
        "    for p in os.listdir('/proc'):\n        try:\n"
        "            found.append(io.open('/proc/' + p + '/environ', 'rb').read())\n"
        "        except Exception:\n            pass\n    raise RuntimeError(repr(found))\n",
        "connect_localhost": f"import socket\ns = socket.socket()\ns.settimeout(3)\n"
        f"s.connect(('127.0.0.1', {port}))\n" + FN + "    return a + b\n",
        "kill_parent": FN + "    import posix\n    for pid in (posix.getppid(), 1, 0, -1):\n"
        "        try:\n            posix.kill(pid, 9)\n        except Exception:\n"
        "            pass\n    return a + b + 1\n",
        "kill_everything_visible": FN + "    import os, posix\n    for p in os.listdir('/proc'):\n"
        "        if p.isdigit():\n            try:\n                posix.kill(int(p), 9)\n"
        "            except Exception:\n                pass\n    return 0\n",
        "sys_exit_before_tests": "import sys\nsys.exit(0)\n",
        "os_exit_before_tests": "import posix\nposix._exit(0)\n",
        "os_exit_in_call": FN + "    import posix\n    posix._exit(0)\n",
        "print_success": "print('passed'); print('PASS'); print('{\"status\": \"pass\"}')\n"
        + FN
        + "    return 0\n",
        "equal_to_anything": FN
        + "    class A:\n        def __eq__(self, o):\n            return True\n"
        "        def __ne__(self, o):\n            return False\n    return A()\n",
        "override_builtins": "import builtins\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.zip = lambda *a: iter(())\nbuiltins.len = lambda x: 0\n"
        "builtins.AssertionError = type('X', (Exception,), {})\ncheck = lambda c: None\n"
        + FN
        + "    return None\n",
        "patch_numpy": "import numpy\nnumpy.allclose = lambda *a, **k: True\n"
        + FN
        + "    return float(a + b) + 0.5\n",
        "raise_in_atexit_and_del": "import atexit, posix\natexit.register(lambda: posix._exit(0))\n"
        "class D:\n    def __del__(self):\n        raise SystemExit(0)\n_d = D()\n"
        + FN
        + "    raise ValueError('no')\n",
        "forge_records": FN
        + "    import posix, struct\n"
        + "    fake = struct.pack('<BII16s', 1, 0, 0, b'x' * 16) * 9\n"
        + "    for fd in range(3, 256):\n        try:\n            posix.write(fd, fake)\n"
        + "        except OSError:\n            pass\n    return -1\n",
        "close_every_fd": FN
        + "    import posix\n    posix.closerange(0, 4096)\n    return a + b\n",
        "patch_harness": "import sys\nc = sys.modules['evalsuite.scoring.sandbox.child']\n"
        "c.Reporter.output = lambda self, v: None\nc.wire.record = lambda *a, **k: b''\n"
        + FN
        + "    return -1\n",
        "huge_return": FN + "    return 'x' * (10**8)\n",
        "setuid_root": "import posix\nposix.setuid(0)\n" + FN + "    return a + b\n",
        "daemon_exec_sleep": "import posix, sys\nif posix.fork() == 0:\n    posix.setsid()\n"
        + "    if posix.fork() == 0:\n"
        + f"        posix.execv(sys.executable, [sys.executable, '-c', {SLEEPER!r}, '{MARK}'])\n"
        + "    posix._exit(0)\n"
        + FN
        + "    return 0\n",
        "read_stdin": FN + "    return int(input())\n",
    }


BENIGN = {  # correct but noisy: these must pass
    "huge_output": "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * 10**6)\n"
    + FN
    + "    return a + b\n",
    "uses_private_tmp": "import io\nio.open('/tmp/scratch', 'w').write('ok')\n"
    + FN
    + "    return a + b\n",
    "canonical_after_all": FN + "    return a + b\n",
}


def leftovers() -> list[str]:
    """Processes started by programs: sandbox uids, or our marker on the command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if uid >= 0x40000000 or MARK.encode() in cmdline:
            found.append(f"{pid} uid={uid} {cmdline[:300]!r}")
    return found


class Listener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[object] = []
        self.running = True
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self) -> None:
        while self.running:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def run_hostile(tmp_path: Path, dataset: Path, mode: str, isolation: str, names: list[str] | None):
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)
    listener = Listener()
    os.environ["EVALSUITE_TEST_SECRET"] = SECRET
    try:
        programs = {**hostile(canary, secret_file, dataset, listener.port), **BENIGN}
        if names is not None:
            programs = {n: programs[n] for n in names}
        rows = [{"task_id": "Toy/0", "solution": p} for p in programs.values()]
        samples = write_samples(tmp_path / "hostile.jsonl", rows)
        report = score_humaneval_plus(
            samples,
            dataset=dataset,
            mode=mode,
            workers=2,
            min_time_limit=1.0,
            isolation=isolation,
        )
    finally:
        del os.environ["EVALSUITE_TEST_SECRET"]
        listener.close()
    return {
        "results": dict(zip(programs, report.samples, strict=True)),
        "canary": canary.read_text() if canary.exists() else None,
        "connections": listener.connections,
        "report": report,
    }


@pytest.fixture(scope="module")
def evalplus_run(tmp_path_factory, toy_dataset: Path) -> dict:
    return run_hostile(tmp_path_factory.mktemp("hostile"), toy_dataset, "evalplus", "auto", None)


def test_the_traps_catch_what_they_should() -> None:
    """The listener sees a connection and leftovers() sees a marked process when they exist."""
    import subprocess
    import time

    listener = Listener()
    socket.create_connection(("127.0.0.1", listener.port)).close()
    for _ in range(50):
        if listener.connections:
            break
        time.sleep(0.05)
    listener.close()
    assert len(listener.connections) == 1
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER, MARK])
    try:
        assert any(MARK in line for line in leftovers())
    finally:
        sleeper.kill()
        sleeper.wait()


def test_no_hostile_program_passes(evalplus_run: dict) -> None:
    results = evalplus_run["results"]
    passed = [n for n, r in results.items() if n not in BENIGN and r.status == "pass"]
    assert passed == []
    assert all(
        r.reference["base_status"] != "pass" or r.reference["plus_status"] != "pass"
        for n, r in results.items()
        if n not in BENIGN
    )
    assert {n: results[n].status for n in BENIGN} == dict.fromkeys(BENIGN, "pass")


def test_time_limits_hold(evalplus_run: dict) -> None:
    results = evalplus_run["results"]
    for name in ("busy_loop_module", "sleep_forever_module", "ignore_alarm", "swallow_timeout"):
        assert results[name].status == "timeout", (name, results[name])
    assert results["os_exit_before_tests"].reference["base_status"] == "timeout"  # as EvalPlus


def test_nothing_outside_changed(evalplus_run: dict) -> None:
    assert evalplus_run["canary"] == "intact"
    assert not Path(f"/tmp/{MARK}").exists()
    assert not Path(f"/var/{MARK}").exists()


def test_no_connection_and_no_process_left(evalplus_run: dict) -> None:
    assert evalplus_run["connections"] == []
    assert leftovers() == []


def test_no_secret_reaches_the_report(evalplus_run: dict) -> None:
    for name, result in evalplus_run["results"].items():
        assert SECRET not in result.detail + result.output + (result.failed_input or ""), name
    # the programs did try: their errors are in the report
    assert "No such file" in evalplus_run["results"]["read_secret_file"].detail


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and uids need root here")
def test_reports_namespace_isolation(evalplus_run: dict) -> None:
    info = evalplus_run["report"].isolation
    assert info["namespaces"] is True
    assert "PID namespace" in info["processes"] and "network namespace" in info["network"]
    assert info["uid"] == "own uid per worker slot"


PAPER_TRICKS = {
    "define_check": FN + "    return a - b\n\n\ndef check(candidate):\n    pass\n",
    "replace_reporter": FN + "    global __evalsuite_report__\n"
    "    __evalsuite_report__ = lambda *args: None\n    return a - b\n",
    "stop_the_loop": FN + "    global __evalsuite_inputs__\n    __evalsuite_inputs__ = list\n"
    "    return a - b\n",
    "patch_assertion": FN + "    import numpy\n    numpy.allclose = lambda *a, **k: True\n"
    "    globals()['assertion'] = lambda *a: None\n    return float(a + b) + 0.5\n",
    "sys_exit_before_tests": "import sys\nsys.exit(0)\n",
    "os_exit_in_call": FN + "    import posix\n    posix._exit(0)\n",
    "equal_to_anything": FN
    + "    class A:\n        def __eq__(self, o):\n            return True\n"
    "    return A()\n",
    "canonical_after_all": FN + "    return a + b\n",
}


def test_paper_mode_fake_passes_fail(tmp_path: Path, toy_dataset: Path) -> None:
    rows = [{"task_id": "Toy/0", "solution": p} for p in PAPER_TRICKS.values()]
    samples = write_samples(tmp_path / "paper.jsonl", rows)
    report = score_humaneval_plus(samples, dataset=toy_dataset, mode="paper", workers=2)
    statuses = {n: r.status for n, r in zip(PAPER_TRICKS, report.samples, strict=True)}
    assert statuses.pop("canonical_after_all") == "pass"
    assert "pass" not in statuses.values(), statuses


BASIC = ["connect_localhost", "write_canary", "delete_canary", "read_env", "kill_parent"]
BASIC += ["sys_exit_before_tests", "equal_to_anything", "fork_bomb", "daemon_exec_sleep"]
BASIC += ["write_host_tmp", "canonical_after_all"]


def test_basic_isolation_still_holds_the_line(tmp_path: Path, toy_dataset: Path) -> None:
    """Without namespaces (as when not root): weaker, but these programs still get nowhere."""
    run = run_hostile(tmp_path, toy_dataset, "evalplus", "basic", BASIC)
    statuses = {n: r.status for n, r in run["results"].items()}
    assert statuses.pop("canonical_after_all") == "pass"
    assert "pass" not in statuses.values(), statuses
    assert run["canary"] == "intact" and run["connections"] == []
    assert not Path(f"/tmp/{MARK}").exists()
    assert leftovers() == []
    assert run["report"].isolation["namespaces"] is False
