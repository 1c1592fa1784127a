"""``evalsuite worker --cpus``: the core list is read as ``taskset -c`` reads it, a bad or
unavailable list is refused before the worker starts, the mask reaches the processes the
worker starts, and the demo gives its workers disjoint cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.worker import affinity
from evalsuite.worker.affinity import CpuListError, parse_cpus, split_cores

EXE = str(Path(sys.executable).with_name("evalsuite"))


@pytest.mark.parametrize(
    ("text", "cores"), [("0", {0}), ("0-3", {0, 1, 2, 3}), ("1,3-4, 7", {1, 3, 4, 7})]
)
def test_core_lists_read_as_taskset_reads_them(text, cores):
    assert parse_cpus(text) == cores


@pytest.mark.parametrize(("text", "says"), [("a", "not a core number"), ("3-1", "is empty"),
                                            ("", "not a core number")])  # fmt: skip
def test_a_malformed_list_says_how_to_write_one(text, says):
    with pytest.raises(CpuListError, match=says):
        parse_cpus(text)


def test_the_worker_refuses_cores_it_may_not_use_before_it_starts():
    allowed = os.sched_getaffinity(0)
    absent = max(allowed) + 1
    done = subprocess.run([EXE, "worker", "--cpus", str(absent), "--api", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert f"core(s) {absent} are not available" in done.stderr
    assert ",".join(map(str, sorted(allowed))) in done.stderr


def test_children_inherit_the_pinned_cores():
    core = min(os.sched_getaffinity(0))
    script = (
        "import os, subprocess, sys\n"
        "from evalsuite.worker.affinity import pin\n"
        f"pin('{core}')\n"
        "child = 'import os; print(sorted(os.sched_getaffinity(0)))'\n"
        "print(subprocess.check_output([sys.executable, '-c', child], text=True).strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == f"[{core}]"


def test_workers_get_disjoint_cores_and_none_when_there_are_too_few(monkeypatch):
    monkeypatch.setattr(affinity.os, "sched_getaffinity", lambda pid: {4, 5, 6, 7, 8})
    assert split_cores(2) == ["4,5", "6,7"]
    assert split_cores(5) == ["4", "5", "6", "7", "8"]
    assert split_cores(6) == [None] * 6
    assert split_cores(1) == [None]
