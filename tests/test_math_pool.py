"""Never a hang: the kill-on-timeout pool, and pathological answers through grade_math.

No wall-clock assertion: that the kill works shows in the outcome itself (items that run
for ever come back as ``timeout``, and the call returns at all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from evalsuite.scoring import grade_math
from evalsuite.scoring.pool import KillingPool, PoolError


def square(x: int) -> int:
    return x * x


def behave(task: str) -> object:
    """Task functions for the pool tests (module level, so workers can import them)."""
    if task == "hang":
        while True:
            pass
    if task == "sleep":
        time.sleep(3600)
    if task == "crash":
        os._exit(3)
    if task == "raise":
        raise ValueError("bad task")
    if task == "unpicklable":
        return lambda: None
    if task == "pid":
        return os.getpid()
    return task


def failing_initializer() -> None:
    raise RuntimeError("antlr missing; pip install it")


def test_pool_keeps_order_and_values():
    with KillingPool(square, workers=2, timeout=5) as pool:
        results = pool.map(range(50))
        again = pool.map([7])
    assert [r.value for r in results] == [x * x for x in range(50)]
    assert {r.status for r in results} == {"ok"} and again[0].value == 49


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_pool_kills_replaces_and_goes_on(start_method):
    tasks = ["a", "hang", "b", "sleep", "crash", "raise", "unpicklable", "c", "pid", "pid"]
    seen = []
    with KillingPool(behave, workers=2, timeout=1.0, start_method=start_method) as pool:
        results = pool.map(tasks, on_result=lambda i, r: seen.append(i))
        replaced = pool.replaced
    status = [r.status for r in results]
    assert status == ["ok", "timeout", "ok", "timeout", "error", "error", "error", "ok", "ok", "ok"]
    assert "exit code 3" in results[4].error and "bad task" in results[5].error
    assert results[7].value == "c" and results[8].value != os.getpid()
    assert sorted(seen) == list(range(len(tasks)))
    assert replaced >= 3  # two timeouts and a crash


def test_pool_reports_a_worker_that_cannot_start():
    with (
        pytest.raises(PoolError, match="antlr missing"),
        KillingPool(square, workers=1, timeout=5, initializer=failing_initializer) as pool,
    ):
        pool.map([1])


def test_pool_rejects_bad_settings():
    with pytest.raises(ValueError, match="workers"):
        KillingPool(square, workers=0)
    with pytest.raises(ValueError, match="timeout"):
        KillingPool(square, timeout=0)


PATHOLOGICAL = {
    "tower": "10^{10^{10}}",
    "sqrt-tower": "\\sqrt{10^{10^{10}}}",
    "nine-tower": "9^{9^{9}}-1",
    "division-by-zero": "\\frac{1}{0}",
    "braces": "{" * 5000 + "1" + "}" * 5000,
    "500-term-sum": "+".join(f"{i}x^{{{i}}}" for i in range(1, 501)),
    "dollars": "$" * 10000,
    "parens": "(" * 3000,
}


@pytest.mark.parametrize("mode", ["paper", "robust"])
def test_pathological_answers_finish_as_timeout_or_wrong(mode):
    timeout = 1.0
    items = [
        {"id": name, "prediction": f"The answer is: {text}", "gold": "5"}
        for name, text in PATHOLOGICAL.items()
    ]
    items.append({"id": "sane", "prediction": "The answer is: 5", "gold": "5"})
    report = grade_math(items, mode=mode, workers=2, timeout=timeout)
    outcome = {s.id: (s.status, getattr(s, mode)) for s in report.samples}
    print(f"\n{mode}: {outcome}")
    for name in PATHOLOGICAL:
        status, verdict = outcome[name]
        assert status == "timeout" or (status == "ok" and verdict is False), (name, status)
    assert outcome["sane"] == ("ok", True)
    assert outcome["tower"][0] == "timeout"  # simplify would compute a 10^10-digit integer


@pytest.mark.parametrize("threads", [False, True])
def test_grade_math_in_a_fresh_process(threads):
    """Single-threaded, workers are forked (and re-forked after a kill); with a thread
    running, they come from the forkserver, preloaded with the parser."""
    script = (
        "import threading, time, json\n"
        + ("threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n" * threads)
        + "from evalsuite.scoring import grade_math\n"
        "from evalsuite.scoring.pool import _single_threaded\n"
        f"assert _single_threaded() is {not threads}\n"
        "r = grade_math([{'prediction': 'The answer is: \\\\frac12', 'gold': '0.5'},\n"
        "                {'prediction': 'The answer is: 10^{10^{10}}', 'gold': '3'},\n"
        "                {'prediction': 'The answer is: 9^{9^{9}}', 'gold': '3'},\n"
        "                {'prediction': 'The answer is: 3', 'gold': '3'}],\n"
        "               mode='both', workers=2, timeout=2)\n"
        "print(json.dumps([[s.paper, s.robust, s.status] for s in r.samples]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [
        [True, True, "ok"],
        [False, False, "timeout"],
        [False, False, "timeout"],
        [True, True, "ok"],
    ]
