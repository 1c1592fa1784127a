"""Expected outputs and reference times for HumanEval+: computed once per machine, then cached.

EvalPlus derives the answers by running each canonical solution on every input (a deep copy
of it, as EvalPlus does) and times each call; the per-input limit is
``max(min_time_limit, factor * time)``. We do the same, in worker processes (tasks in
parallel, as scoring later runs them), recording the wall clock (what EvalPlus uses for the
limits) and the CPU clock (what paper mode takes off its budget: it does not grow when the
machine is busy). Kept in the user cache directory, keyed by the dataset's sha256 and the
Python version (outputs and their encoding depend on it):

* ``truth.pkl``: for every task and split the times, the BLAKE2b digest of each encoded
  output (what the scorer compares against), the size and decoding cost of what the sandbox
  sends for it (how big a plausible output may be: ``wire.bound_for``), where the
  floats start (EvalPlus' sticky tolerance) and which outputs are floats for the HF
  ``is_floats`` (paper mode), plus the bigcode deduplication of base + plus inputs;
* ``outputs/<n>.pkl``: the outputs themselves, loaded only when an output does not match
  byte for byte and has to be compared by value (tolerance, ``1 == 1.0``).

Files are private to the user (0600 in a 0700 directory): they hold the answers, and the
sandbox must not read them (its processes run as another uid and see the cache hidden).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import platform
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.scoring.code.data import Dataset, Problem
from evalsuite.scoring.sandbox import wire
from evalsuite.settings import cache_root

FORMAT = 3  # 3: sizes and costs of the encoded outputs
WORKER_TIMEOUT = 3600.0  # seconds for one worker's share of the canonical solutions


@dataclass(frozen=True)
class SplitTruth:
    times: list[float]  # CPU seconds per call (wall clock in ``wall``)
    wall: list[float]
    digests: bytes  # 16 bytes per input
    first_float: int | None  # first index whose output is_floats (EvalPlus 0.3.1's version)
    hf_floats: bytes  # 1 byte per input: is_floats as in the HF test (empty lists count)
    sizes: list[int]  # bytes of the payload the sandbox sends for the expected output
    costs: list[int]  # what decoding that payload allocates at most (``decode_cost``)

    def digest(self, index: int) -> bytes:
        return self.digests[16 * index : 16 * index + 16]

    def bound(self, index: int) -> wire.Bound:
        """What a payload may be for this input: a few times the expected one, at most."""
        return wire.bound_for(self.sizes[index], self.costs[index])


@dataclass(frozen=True)
class TaskTruth:
    task_id: str
    base: SplitTruth
    plus: SplitTruth
    paper_index: list[int]  # bigcode's deduplicated inputs, as indices into base + plus
    paper_base: int  # how many of those come from base_input


def is_floats(x: Any, empty_counts: bool = False) -> bool:
    """EvalPlus' float test (0.3.1; ``empty_counts``: the older one in the HF test)."""
    if isinstance(x, float):
        return True
    if isinstance(x, list | tuple) and (x or empty_counts):
        return all(isinstance(i, float) for i in x)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(x, numpy.ndarray):
        return x.dtype == numpy.float64 or x.dtype == numpy.float32
    return False


def _split(
    outputs: list[Any], times: list[float], wall: list[float], entry_point: str, inputs: list[Any]
) -> SplitTruth:
    floats = [is_floats(o) for o in outputs]
    digests, sizes, costs = [], [], []
    for out, payload in zip(outputs, sent(entry_point, outputs, inputs), strict=True):
        own = wire.encode(out) if entry_point == "find_zero" else payload
        digests.append(wire.digest(own))
        sizes.append(len(payload))
        costs.append(wire.decode_cost(payload))
    return SplitTruth(
        times=times,
        wall=wall,
        digests=b"".join(digests),
        first_float=floats.index(True) if True in floats else None,
        hf_floats=bytes(is_floats(o, empty_counts=True) for o in outputs),
        sizes=sizes,
        costs=costs,
    )


def sent(entry_point: str, outputs: list[Any], inputs: list[Any]) -> Iterator[bytes]:
    """The payloads the sandbox sends for these outputs (find_zero's come with their input)."""
    if entry_point == "find_zero":
        for out, inp in zip(outputs, inputs, strict=True):
            yield wire.encode((out, inp))
    else:
        for out in outputs:
            yield wire.encode(out)


def _compute(args: tuple[str, str, str, list[Any], list[Any], str]) -> dict[str, Any]:
    """In a worker: run the canonical solution on every input, save outputs, return the rest."""
    _, code, entry_point, base, plus, out_path = args
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    fn = namespace[entry_point]
    result: dict[str, Any] = {}
    for name, inputs in (("base", base), ("plus", plus)):
        outputs, times, wall = [], [], []
        for inp in inputs:
            inp = copy.deepcopy(inp)
            start, cpu = time.time(), time.process_time()
            outputs.append(fn(*inp))
            times.append(time.process_time() - cpu)
            wall.append(time.time() - start)
        result[name] = (outputs, times, wall, entry_point, inputs)
    _write(Path(out_path), {name: parts[0] for name, parts in result.items()})
    return {name: _split(*parts) for name, parts in result.items()}


def _write(path: Path, value: Any) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(value, f, protocol=5)
    os.replace(tmp, path)


def _dedup(problem: Problem) -> tuple[list[int], int]:
    """bigcode's test keeps the first of inputs with the same ``str()`` (base first)."""
    seen: set[str] = set()
    keep: list[int] = []
    for i, inp in enumerate(problem.base_input + problem.plus_input):
        key = f"{inp}"
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep, sum(1 for i in keep if i < len(problem.base_input))


def _run_workers(
    args: list[tuple[Any, ...]], workers: int, on_progress: Callable[[int, int], None] | None
) -> dict[str, dict[str, SplitTruth]]:
    """Compute in ``workers`` fresh interpreters (``python -m`` this module), biggest first.

    Fresh processes rather than a fork pool: the caller may have threads (a progress bar)
    or be a script without a ``__main__`` guard, and canonical solutions should not run in
    the scorer's own process.
    """
    order = sorted(args, key=lambda a: -(len(a[3]) + len(a[4])))
    shares: list[list[tuple[Any, ...]]] = [[] for _ in range(workers)]
    for n, arg in enumerate(order):
        shares[n % workers].append(arg)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    command = [sys.executable, "-m", "evalsuite.scoring.code.truth"]
    procs = []
    for share in shares:
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert proc.stdin is not None
        pickle.dump(share, proc.stdin, protocol=5)
        proc.stdin.close()
        procs.append(proc)
    results: dict[str, dict[str, SplitTruth]] = {}
    selector = selectors.DefaultSelector()
    for proc in procs:
        selector.register(proc.stdout, selectors.EVENT_READ, proc)  # type: ignore[arg-type]
    deadline = time.monotonic() + WORKER_TIMEOUT
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    selector.unregister(key.fileobj)
                    continue
                task_id = line.decode().strip()
                with open(_facts_path(Path(dict((a[0], a[5]) for a in args)[task_id])), "rb") as f:
                    results[task_id] = pickle.load(f)
                if on_progress is not None:
                    on_progress(len(results), len(args))
            if time.monotonic() > deadline:
                raise RuntimeError(f"computing expected outputs took over {WORKER_TIMEOUT:g} s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    missing = [a[0] for a in args if a[0] not in results]
    if missing:
        errors = b"".join(p.stderr.read() for p in procs if p.stderr).decode(errors="replace")
        raise RuntimeError(
            f"the canonical solution of {missing[0]} did not run ({errors.strip()[-500:]}); "
            "is the dataset an intact HumanEval+ release?"
        )
    return results


def _facts_path(out_path: Path) -> Path:
    return out_path.with_suffix(".facts.pkl")


def _worker() -> None:
    """``python -m evalsuite.scoring.code.truth``: tasks pickled on stdin, ids on stdout."""
    for arg in pickle.load(sys.stdin.buffer):
        facts = _compute(arg)
        _write(_facts_path(Path(arg[5])), facts)
        sys.stdout.write(arg[0] + "\n")
        sys.stdout.flush()


def truth_cache_dir() -> Path:
    """Where ground truth is cached: ``humaneval_plus/`` under the package's cache root."""
    return cache_root() / "humaneval_plus"


class GroundTruth:
    """Per-task answers for a dataset; computes what the cache lacks."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        workers: int = 1,
        task_ids: list[str] | None = None,
        cache_dir: Path | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        version = f"py{sys.version_info.major}{sys.version_info.minor}-f{FORMAT}"
        self.dataset = dataset
        self.directory = (cache_dir or truth_cache_dir()) / f"{dataset.sha256[:16]}-{version}"
        self.tasks: dict[str, TaskTruth] = {}
        self._outputs: dict[str, dict[str, list[Any]]] = {}
        self.computed = 0
        self._load_or_compute(task_ids or list(dataset.problems), workers, on_progress)

    @property
    def outputs_dir(self) -> Path:
        return self.directory / "outputs"

    def _output_path(self, task_id: str) -> Path:
        return self.outputs_dir / f"{list(self.dataset.problems).index(task_id)}.pkl"

    def _load_or_compute(
        self, wanted: list[str], workers: int, on_progress: Callable[[int, int], None] | None
    ) -> None:
        index_path = self.directory / "truth.pkl"
        if index_path.is_file():
            with open(index_path, "rb") as f:
                self.tasks = pickle.load(f)
        missing = [t for t in wanted if t not in self.tasks]
        if not missing:
            return
        os.makedirs(self.outputs_dir, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)
        args = []
        for task_id in missing:
            p = self.dataset.problems[task_id]
            out = str(self._output_path(task_id))
            args.append(
                (task_id, p.canonical_program, p.entry_point, p.base_input, p.plus_input, out)
            )
        started = time.time()
        results = _run_workers(args, max(1, min(workers, len(args))), on_progress)
        for task_id in missing:
            value = results[task_id]
            keep, base_count = _dedup(self.dataset.problems[task_id])
            self.tasks[task_id] = TaskTruth(task_id, value["base"], value["plus"], keep, base_count)
        self.computed = len(missing)
        _write(index_path, self.tasks)
        meta = {
            "dataset": str(self.dataset.path),
            "sha256": self.dataset.sha256,
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "computed_seconds": round(time.time() - started, 1),
            "workers": workers,
        }
        (self.directory / "meta.json").write_text(json.dumps(meta, indent=1))

    def outputs(self, task_id: str) -> dict[str, list[Any]]:
        """The expected outputs of one task (base and plus), loaded on first use."""
        if task_id not in self._outputs:
            if len(self._outputs) >= 4:
                self._outputs.pop(next(iter(self._outputs)))
            with open(self._output_path(task_id), "rb") as f:
                self._outputs[task_id] = pickle.load(f)
        return self._outputs[task_id]


if __name__ == "__main__":  # run the module's own copy, so pickles name its classes
    from evalsuite.scoring.code.truth import _worker as worker

    worker()
