"""A program cannot make the scorer swell through its report pipe (security issue, point 5).

The restricted unpickler refuses globals, but pickle amplifies: one ``EMPTY_SET`` byte is a
216-byte set, so 12 MiB of them took the scorer to 3 GB. ``decode`` now checks a payload
against a bound derived from the expected output's encoding, before unpickling anything.
These tests check the properties, not just verdicts: what decoding may allocate is bounded
(``decode_cost`` is an upper bound of what the unpickler really allocates, and a payload
over the bound is refused with almost nothing allocated), legitimate outputs are never
refused, and a real program forging records in the real sandbox leaves the scorer's peak
memory where it was. Memory is checked with small figures (tracemalloc, an RLIMIT_AS on the
scorer's process) so that a regression fails the test instead of taking the machine down.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_code_helpers import TOY_ROWS, requires_data, write_samples

from evalsuite.scoring.sandbox import wire

P5 = pickle.PROTO + b"\x05"
MiB = 2**20


def in_list(body: bytes) -> bytes:
    """A pickle of one list holding what ``body`` pushes (``]( ... e.``)."""
    return P5 + pickle.EMPTY_LIST + pickle.MARK + body + pickle.APPENDS + pickle.STOP


def small_int_bound() -> wire.Bound:
    """The bound for an output compared with the int 3 (the toy ``add(1, 2)``)."""
    expected = wire.encode(3)
    return wire.bound_for(len(expected), wire.decode_cost(expected))


def traced_peak(action: Any) -> int:
    """Peak bytes allocated by ``action()`` (tracemalloc), whether it raises or not."""
    tracemalloc.start()
    try:
        action()
    except Exception:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def unpickle(payload: bytes) -> Any:
    """What decoding used to be: the restricted unpickler alone, with no bound."""
    return wire._Decoder(io.BytesIO(payload)).load()


def short(text: str) -> bytes:
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()


TAG = short(wire.__name__) + short("_tag") + pickle.STACK_GLOBAL  # what encode writes for _tag


MEMO = pickle.EMPTY_SET + pickle.BINPUT + b"\0" + (pickle.BINGET + b"\0") * 1000
FLOODS = {
    "EMPTY_SET": in_list(pickle.EMPTY_SET * 20000),
    "EMPTY_LIST": in_list(pickle.EMPTY_LIST * 20000),
    "EMPTY_DICT": in_list(pickle.EMPTY_DICT * 20000),
    "APPEND": P5 + pickle.EMPTY_LIST + (pickle.EMPTY_LIST + pickle.APPEND) * 20000 + pickle.STOP,
    "TUPLE1": in_list((pickle.NONE + pickle.TUPLE1) * 20000),
    # as deep as MAX_DEPTH allows (deeper is refused, tests/test_code_wire_cpu), 200 times
    "nested": in_list((pickle.NONE + pickle.TUPLE1 * 99) * 200),
    "MARK": in_list((pickle.MARK * 99 + pickle.NONE + pickle.TUPLE * 99) * 200),
    "FROZENSET": in_list((pickle.MARK + pickle.EMPTY_SET + pickle.FROZENSET) * 20000),
    "set of ints": P5
    + pickle.EMPTY_SET
    + pickle.MARK
    + b"".join(pickle.BININT + i.to_bytes(4, "little") for i in range(20000))
    + pickle.ADDITEMS
    + pickle.STOP,
    "dict of ints": P5
    + pickle.EMPTY_DICT
    + pickle.MARK
    + b"".join(pickle.BININT + i.to_bytes(4, "little") + pickle.NONE for i in range(20000))
    + pickle.SETITEMS
    + pickle.STOP,
    "astral string": P5
    + pickle.BINUNICODE
    + (4 * 20000 + 4).to_bytes(4, "little")
    + b"a" * 4 * 20000
    + "\U0001f600".encode()
    + pickle.STOP,
    "opaque tags": in_list(
        (TAG + short("opaque") + short("x") + pickle.TUPLE2 + pickle.REDUCE) * 2000
    ),
    "numpy arrays": in_list(
        (
            TAG
            + short("nparray")
            + short("<f8")
            + pickle.BININT2
            + (1000).to_bytes(2, "little")
            + pickle.TUPLE1
            + pickle.BINBYTES
            + (8000).to_bytes(4, "little")
            + bytes(8000)
            + pickle.MARK
            + pickle.TUPLE
            + pickle.REDUCE
        )
        * 20
    ),
}
NEVER_WRITTEN = {  # opcodes fast-mode ``encode`` does not emit: refused whatever the bound
    "memo GET": in_list(MEMO),
    "MEMOIZE": in_list(pickle.EMPTY_SET + b"\x94" + (pickle.BINGET + b"\0") * 1000),
    "DUP": in_list(pickle.EMPTY_SET + pickle.DUP * 1000),
    "protocol 0": pickle.dumps([1, "a"], protocol=0),
    "memo in a protocol 5 dump": pickle.dumps([[1], [1]] * 2, protocol=5),
    "PROTO twice": P5 + P5 + pickle.NONE + pickle.STOP,
    "BUILD": P5 + pickle.EMPTY_DICT + pickle.EMPTY_DICT + pickle.BUILD + pickle.STOP,
    "trailing bytes": wire.encode(1) + b"junk",
    "two values": P5 + pickle.NONE + pickle.NONE + pickle.STOP,
    "truncated": wire.encode("x" * 300)[:-10],
}
LEGIT = [
    3,
    [1, 2.5, "x", None, True, (1, (2,)), {"a": {3, 4}}, frozenset({1}), b"b", 10**400, 10**1000],
    list(range(5000)),
    "é" * 1000 + "\U0001f600",
    {str(i): [i, float(i)] for i in range(2000)},
    [np.int64(i) for i in range(500)],
    np.arange(3000, dtype=np.float64).reshape(30, 100),
    [1 + 2j, wire.Opaque("x")],
]


@pytest.mark.parametrize("name", list(FLOODS))
def test_cost_bounds_what_the_unpickler_allocates(name: str) -> None:
    payload = FLOODS[name]
    assert traced_peak(lambda: unpickle(payload)) <= wire.decode_cost(payload)


@pytest.mark.parametrize("value", LEGIT, ids=lambda v: type(v).__name__)
def test_cost_bounds_legitimate_values_too(value: Any) -> None:
    payload = wire.encode(value)
    assert traced_peak(lambda: unpickle(payload)) <= wire.decode_cost(payload)
    decoded = wire.decode(payload, wire.bound_for(len(payload), wire.decode_cost(payload)))
    assert wire.encode(decoded) == payload


@pytest.mark.parametrize("name", list(NEVER_WRITTEN))
def test_opcodes_encode_never_writes_are_refused(name: str) -> None:
    with pytest.raises(wire.Implausible):
        wire.decode(NEVER_WRITTEN[name], wire.Bound(wire.MAX_PAYLOAD, 2**40))


def test_memo_amplification_is_refused_before_it_allocates() -> None:
    # one set and a million references to it: 2 bytes each, 8 MB of list for 2 MB
    payload = in_list(pickle.EMPTY_SET + pickle.BINPUT + b"\0" + (pickle.BINGET + b"\0") * MiB)
    assert traced_peak(lambda: wire.decode(payload)) < MiB


def test_a_flood_is_refused_unread_with_memory_to_spare() -> None:
    payload = in_list(pickle.EMPTY_SET * 8 * MiB)  # 8 MiB that would decode to ~2 GB
    # by its size, against the answer it stands for
    with pytest.raises(wire.Implausible, match="plausible"):
        wire.decode(payload, small_int_bound())
    # by what it would allocate, when the size alone would let it in: the scan stops early
    bound = wire.Bound(wire.MAX_PAYLOAD, 64 * MiB)
    started = time.perf_counter()
    with pytest.raises(wire.Implausible, match="would take over"):
        wire.decode(payload, bound)
    assert time.perf_counter() - started < 2  # ~0.1 s: it stops at the bound
    small = wire.Bound(wire.MAX_PAYLOAD, 16 * MiB)  # (tracemalloc slows the scan down 50x)
    assert traced_peak(lambda: wire.decode(payload, small)) < small.memory / 8  # the scan only


@pytest.mark.parametrize("body", [pickle.EMPTY_LIST, pickle.EMPTY_DICT, pickle.EMPTY_SET])
def test_floods_under_the_size_floor_stay_under_the_memory_floor(body: bytes) -> None:
    """The worst a payload under the size floor can do is about the memory floor."""
    payload = in_list(body * (wire.SIZE_FLOOR - 5))
    assert len(payload) <= small_int_bound().size
    assert wire.decode_cost(payload) < 1.25 * wire.MEMORY_FLOOR


def test_long_strings_cost_what_they_decode_to() -> None:
    bound = wire.Bound(wire.MAX_PAYLOAD, 16 * MiB)
    ascii_ = wire.encode("a" * 4 * MiB)
    assert len(wire.decode(ascii_, bound)) == 4 * MiB
    wide = wire.encode("é" * (2 * MiB))  # 4 MiB of UTF-8, up to 4 bytes a character decoded
    with pytest.raises(wire.Implausible, match="would take over"):
        wire.decode(wide, bound)
    assert traced_peak(lambda: unpickle(wide)) <= wire.decode_cost(wide)


class MyInt(int):
    pass


class MyList(list):
    pass


@pytest.mark.parametrize(
    "expected, equal",
    [
        (list(range(100000)), lambda e: list(np.array(e))),  # np.int64 elements
        ([True, False] * 50000, lambda e: list(np.array(e))),  # np.bool_: 1 byte -> 66
        ([0.5] * 100000, lambda e: list(np.array(e))),
        (list(range(100000)), lambda e: MyList(MyInt(x) for x in e)),
        (list(range(100000)), lambda e: [float(x) for x in e]),
    ],
)
def test_outputs_equal_to_the_answer_are_never_refused(expected: Any, equal: Any) -> None:
    """Equal under the comparison rules, yet bigger: within the bound of the answer."""
    out = equal(expected)
    assert out == expected
    answer = wire.encode(expected)
    got = wire.decode(wire.encode(out), wire.bound_for(len(answer), wire.decode_cost(answer)))
    assert got == expected


@pytest.mark.slow
def test_every_expected_humaneval_plus_output_decodes_under_its_own_bound() -> None:
    """All 164 tasks, base and plus: what the sandbox sends for the answer is never refused."""
    from evalsuite.scoring.code.data import load_dataset
    from evalsuite.scoring.code.truth import GroundTruth, sent

    data = load_dataset(requires_data())
    truth = GroundTruth(data, workers=2)
    checked = 0
    for task_id, problem in data.problems.items():
        outputs = truth.outputs(task_id)
        for split, inputs in (("base", problem.base_input), ("plus", problem.plus_input)):
            facts = getattr(truth.tasks[task_id], split)
            payloads = list(sent(problem.entry_point, outputs[split], inputs))
            for index, payload in enumerate(payloads):
                assert len(payload) == facts.sizes[index]
                assert wire.encode(wire.decode(payload, facts.bound(index))) == payload
            # the biggest answer as numpy scalars (what np.array(...).tolist() would not do)
            big = max(range(len(payloads)), key=lambda i: facts.sizes[i])
            value = numpy_scalars(outputs[split][big])
            if problem.entry_point != "find_zero" and value == outputs[split][big]:
                assert wire.decode(wire.encode(value), facts.bound(big)) == outputs[split][big]
            checked += len(payloads)
    assert checked == 1570 + 122683  # every base and plus input of HumanEval+ v0.1.10


def numpy_scalars(value: Any) -> Any:
    """``value`` with its ints, floats and bools as numpy scalars (equal, but bigger to send)."""
    if type(value) is bool:
        return np.bool_(value)
    if type(value) is int and -(2**63) <= value < 2**63:
        return np.int64(value)
    if type(value) is float:
        return np.float64(value)
    if type(value) in (list, tuple):
        return type(value)(numpy_scalars(v) for v in value)
    return value


FORGE = '''\
import hashlib, posix, stat, struct, time


def forge(payload):
    """Write one OUT record for input 0 to the report pipe, signed: it passes framing."""
    time.sleep(0.05)  # the harness's buffered record goes out first
    digest = hashlib.blake2b(payload, digest_size=16).digest()
    record = memoryview(struct.pack("<BII16s", 1, 0, len(payload), digest) + payload)
    for fd in range(3, 256):
        try:
            if not stat.S_ISFIFO(posix.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        while record:
            record = record[posix.write(fd, record):]

'''
FLOOD = "b'\\x80\\x05](' + b'\\x8f' * (8 * 2**20) + b'e.'"
BIG_ROW = {  # an answer of ~400 KB: an 8 MiB payload passes its size bound, not its memory one
    "task_id": "Big/0",
    "prompt": "def seq(n):\n",
    "entry_point": "seq",
    "canonical_solution": "    return list(range(n))\n",
    "base_input": [[100000]],
    "plus_input": [[5]],
    "atol": 0,
    "contract": "",
    "test": "",
}
SCORER = """\
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), resource.RLIM_INFINITY))
from evalsuite.scoring.code.score import score_humaneval_plus
report = score_humaneval_plus(sys.argv[1], dataset=sys.argv[2], workers=1, min_time_limit=5)
print(json.dumps([[s.task_id, s.status, s.reference, s.detail] for s in report.samples]))
"""
SCORER_CAP = 2**30  # address space: a regression hits MemoryError there, not the machine


def scorer_run(samples: Path, dataset: Path) -> tuple[list[list[Any]], int]:
    """Score in a child process; its verdicts and its peak resident memory (bytes)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-c", SCORER, str(samples), str(dataset), str(SCORER_CAP)]
    out, err = samples.with_suffix(".out"), samples.with_suffix(".err")
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
    timer = threading.Timer(300, child.kill)
    timer.start()
    try:  # wait4, not Popen.wait: the child's own rusage
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, err.read_text()[-3000:]
    return json.loads(out.read_text()), usage.ru_maxrss * 1024


def test_forged_records_in_the_real_sandbox_leave_the_scorer_small(tmp_path: Path) -> None:
    """8 MiB of EMPTY_SET (2 GB decoded) written to the report pipe: no pass, no growth."""
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in [*TOY_ROWS, BIG_ROW]))
    benign = [
        {"task_id": "Toy/0", "solution": "def add(a, b):\n    return a + b\n"},
        {"task_id": "Big/0", "solution": "def seq(n):\n    return list(range(n))\n"},
        {
            "task_id": "Big/0",
            "solution": "import numpy as np\ndef seq(n):\n    return list(np.arange(n))\n",
        },  # equal, 18x bigger to send: must pass
    ]
    hostile = [
        {
            "task_id": "Toy/0",
            "solution": FORGE + f"def add(a, b):\n    forge({FLOOD})\n    return a + b\n",
        },
        {
            "task_id": "Big/0",
            "solution": FORGE + f"def seq(n):\n    forge({FLOOD})\n    return list(range(n))\n",
        },
    ]
    before, baseline = scorer_run(write_samples(tmp_path / "benign.jsonl", benign), dataset)
    assert [status for _, status, _, _ in before] == ["pass"] * 3
    after, peak = scorer_run(write_samples(tmp_path / "hostile.jsonl", hostile), dataset)
    assert [status for _, status, _, _ in after] == ["fail", "fail"]
    assert "output refused" in after[0][3] and "plausible" in after[0][3]  # by its size
    assert "output refused" in after[1][3] and "would take over" in after[1][3]  # by its cost
    assert all(ref["base_status"] == "fail" for _, _, ref, _ in after)
    assert peak - baseline < 200 * MiB, (peak, baseline)  # unbounded, it was ~2 GB
