"""A process pool that enforces a wall-clock limit per task by killing the worker.

Scoring runs code that can run for ever: sympy simplifying ``10^{10^{10}} - 5`` computes a
ten-billion-digit integer, and generated programs loop. The usual tools cannot stop that:
``signal.alarm`` only works on the main thread and cannot interrupt a long C call, and
``concurrent.futures`` / ``multiprocessing.Pool`` cannot cancel a running task. So each
worker here is a process that runs one task at a time; when a task passes its deadline
the parent kills the process (SIGKILL), reports ``timeout`` for that task, starts a
replacement and goes on. A worker that dies (segfault, out of memory) costs its task an
``error``, never the run.

Generic on purpose (the HumanEval+ sandbox needs the same thing): ``fn`` is any picklable
module-level function of one picklable argument. A worker takes tasks only after it reports
ready, so start-up time never counts against a task's limit. How workers start:

* ``fork`` when this process has a single thread (checked at each start): the worker
  inherits what this process has imported and starts in milliseconds;
* otherwise ``forkserver`` (forking a process with threads can deadlock the child), whose
  server imports ``preload`` once, so replacements are still fast. Like every
  non-fork start method it re-imports the main module in the worker: scripts that call
  the pool need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Status = Literal["ok", "timeout", "error"]
START_TIMEOUT = 120.0  # seconds a new worker may take to import and initialise


class PoolError(RuntimeError):
    """The pool itself cannot run (a worker cannot start); not a problem with one task."""


@dataclass(frozen=True, slots=True)
class TaskResult(Generic[R]):
    """What became of one task: its value, or why there is none."""

    status: Status
    value: R | None = None
    error: str | None = None
    seconds: float = 0.0


def _single_threaded() -> bool:
    """No other thread, Python's or a library's (OpenMP, ...), that a fork could cut off."""
    if threading.active_count() != 1:
        return False
    try:
        with open("/proc/self/status") as status:
            return any(line.split() == ["Threads:", "1"] for line in status)
    except OSError:
        return False


def _worker_main(
    conn: Connection,
    fn: Callable[[Any], Any],
    initializer: Callable[[], None] | None,
    memory_limit_mb: int | None,
    inherited_fds: Sequence[int],
) -> None:
    """Worker loop: say ("ready",), then answer each (index, task) with a "result" message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for fd in inherited_fds:  # a forked worker must not hold its siblings' pipes open
        with contextlib.suppress(OSError):
            os.close(fd)
    parent = os.getppid()
    try:
        if memory_limit_mb:
            limit = memory_limit_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if initializer is not None:
            initializer()
    except BaseException as e:
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready",))
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent:  # orphaned: the parent died without telling us
                    return
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        index, task = message
        try:
            reply = ("result", index, "ok", fn(task))
        except Exception as e:
            reply = ("result", index, "error", f"{type(e).__name__}: {e}")
        try:
            conn.send(reply)
        except Exception as e:  # an unpicklable value
            conn.send(("result", index, "error", f"cannot send the result back: {e}"))


@dataclass(slots=True)
class _Worker:
    process: Any
    conn: Connection
    started: float
    ready: bool = False
    task: int | None = None
    deadline: float = 0.0
    sent_at: float = 0.0


class KillingPool:
    """Run ``fn`` over tasks in ``workers`` processes, ``timeout`` seconds per task at most.

    ``initializer`` runs in each new worker before it reports ready (an exception there is
    a PoolError, with its message). ``preload`` names modules for the forkserver to import
    (a process-wide setting of multiprocessing's forkserver). ``memory_limit_mb`` caps each
    worker's address space, so a runaway allocation fails in the worker, not the machine.
    ``start_method`` forces one (tests); by default fork or forkserver as described above.

    Use as a context manager, or call ``close()``; ``map`` can be called several times and
    keeps its workers (and their caches) between calls.
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        *,
        workers: int = 2,
        timeout: float = 5.0,
        initializer: Callable[[], None] | None = None,
        preload: Sequence[str] = (),
        memory_limit_mb: int | None = None,
        start_method: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.fn, self.workers, self.timeout = fn, workers, timeout
        self.initializer, self.memory_limit_mb = initializer, memory_limit_mb
        self._methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in self._methods:
            raise ValueError(f"start method {start_method!r} not in {self._methods}")
        self.start_method = start_method
        if preload and "forkserver" in self._methods:
            multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
        self._pool: list[_Worker] = []
        self.replaced = 0  # workers killed or lost and started again

    def __enter__(self) -> KillingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _context(self) -> Any:
        if self.start_method is not None:
            return multiprocessing.get_context(self.start_method)
        if "fork" in self._methods and _single_threaded():
            return multiprocessing.get_context("fork")
        return multiprocessing.get_context(
            "forkserver" if "forkserver" in self._methods else "spawn"
        )

    def _start(self) -> _Worker:
        ctx = self._context()
        parent, child = ctx.Pipe()
        forked = ctx.get_start_method() == "fork"
        siblings = [w.conn.fileno() for w in self._pool if not w.conn.closed] if forked else []
        process = ctx.Process(
            target=_worker_main,
            args=(child, self.fn, self.initializer, self.memory_limit_mb, siblings),
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent, time.monotonic())

    def _stop(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()

    def close(self) -> None:
        """Stop every worker (asking first, killing those that do not stop in time)."""
        for worker in self._pool:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self._pool:
            worker.process.join(timeout=1)
            self._stop(worker)
        self._pool.clear()

    def map(
        self,
        tasks: Iterable[T],
        on_result: Callable[[int, TaskResult[R]], None] | None = None,
    ) -> list[TaskResult[R]]:
        """Results in task order; ``on_result(index, result)`` is called as each one lands."""
        pending = deque(enumerate(tasks))
        results: list[TaskResult[R] | None] = [None] * len(pending)
        while len(self._pool) < min(self.workers, len(pending)):
            self._pool.append(self._start())

        def finish(worker: _Worker, status: Status, value: Any = None, error: Any = None) -> None:
            index, worker.task = worker.task, None
            assert index is not None
            took = time.monotonic() - worker.sent_at
            results[index] = result = TaskResult(status, value, error, took)
            if on_result is not None:
                on_result(index, result)

        def replace(worker: _Worker) -> None:
            self._stop(worker)
            position = self._pool.index(worker)
            del self._pool[position]  # before _start, which looks at the live siblings
            self._pool.insert(position, self._start())
            self.replaced += 1

        try:
            while pending or any(w.task is not None for w in self._pool):
                now = time.monotonic()
                for worker in list(self._pool):
                    if worker.ready and worker.task is None and pending:
                        index, task = pending.popleft()
                        try:
                            worker.conn.send((index, task))
                        except OSError:  # it died while idle: the task goes to another
                            pending.appendleft((index, task))
                            replace(worker)
                            continue
                        worker.task, worker.sent_at, worker.deadline = (
                            index,
                            now,
                            now + self.timeout,
                        )
                waits = [w.deadline - now for w in self._pool if w.task is not None]
                waits += [w.started + START_TIMEOUT - now for w in self._pool if not w.ready]
                ready = wait([w.conn for w in self._pool], timeout=max(0.0, min(waits, default=1)))
                for worker in [w for w in self._pool if w.conn in ready]:
                    try:
                        message = worker.conn.recv()
                    except (EOFError, OSError):
                        worker.process.join(timeout=5)
                        code = worker.process.exitcode
                        if not worker.ready:
                            self.close()
                            raise PoolError(
                                f"a worker exited while starting (exit code {code})"
                            ) from None
                        if worker.task is not None:
                            finish(worker, "error", error=f"worker died (exit code {code})")
                        replace(worker)
                        continue
                    if message[0] == "ready":
                        worker.ready = True
                    elif message[0] == "failed":
                        self.close()
                        raise PoolError(f"a worker could not start: {message[1]}")
                    elif message[1] == worker.task:  # ("result", index, status, payload)
                        _, _, status, payload = message
                        if status == "ok":
                            finish(worker, "ok", value=payload)
                        else:
                            finish(worker, "error", error=payload)
                now = time.monotonic()
                for worker in list(self._pool):
                    if worker.task is not None and now >= worker.deadline:
                        finish(worker, "timeout", error=f"over the {self.timeout:g} s limit")
                        replace(worker)
                    elif not worker.ready and now >= worker.started + START_TIMEOUT:
                        self.close()
                        raise PoolError(f"a worker did not start within {START_TIMEOUT:g} s")
        except BaseException:
            self.close()
            raise
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
