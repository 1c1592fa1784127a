"""``evalsuite worker --cpus``: pin a worker, and everything it starts, to a set of cores.

On a CPU machine several workers otherwise share every core: each engine's threads want all
of them, and a thread preempted by another worker's holds up the rest of its engine. Pinned
workers each run on cores of their own (the engine, the grading pools and the sandboxes are
children and inherit the mask; torch and OpenMP size their thread pools from it).
"""

from __future__ import annotations

import os

from evalsuite.errors import EvalsuiteError


class CpuListError(EvalsuiteError):
    """A ``--cpus`` value that names no usable cores."""


def parse_cpus(text: str) -> set[int]:
    """``"0-3,6"`` -> ``{0, 1, 2, 3, 6}`` (the form of ``taskset -c`` and cgroup cpusets)."""
    cores: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            low = int(first)
            high = int(last) if sep else low
        except ValueError:
            raise CpuListError(
                f"--cpus {text!r}: {part.strip()!r} is not a core number or range; write it "
                "as taskset -c does, e.g. 0-3 or 0,2"
            ) from None
        if low < 0 or high < low:
            raise CpuListError(f"--cpus {text!r}: the range {part.strip()!r} is empty")
        cores.update(range(low, high + 1))
    return cores


def pin(text: str) -> set[int]:
    """Restrict this process (and what it starts from now on) to the cores ``text`` names."""
    wanted = parse_cpus(text)
    allowed = os.sched_getaffinity(0)
    if not wanted <= allowed:
        missing = ",".join(map(str, sorted(wanted - allowed)))
        raise CpuListError(
            f"--cpus {text!r}: core(s) {missing} are not available to this process; it may use "
            f"{format_cpus(allowed)}"
        )
    os.sched_setaffinity(0, wanted)
    return wanted


def format_cpus(cores: set[int]) -> str:
    return ",".join(map(str, sorted(cores)))


def split_cores(workers: int) -> list[str | None]:
    """Disjoint ``--cpus`` values for ``workers`` workers on this machine's cores, or ``None``
    for each where there are fewer cores than workers (pinning would then only hurt)."""
    cores = sorted(os.sched_getaffinity(0))
    if workers < 2 or len(cores) < workers:
        return [None] * workers
    share = len(cores) // workers
    return [format_cpus(set(cores[i * share : (i + 1) * share])) for i in range(workers)]
