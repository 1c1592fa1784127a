"""A report cannot make the scorer spend CPU without bound to decode it (issue 26, finding 3).

Building a set, frozenset or dict compares each item with every earlier one of the same hash,
and int and tuple hashes are predictable: ``c + k * (2**61 - 1)`` all hash to ``c``. 60k
such ints in one set took the scorer 49 s, 4M fit the memory bound of a 5 MB answer (days).
The payloads here are written opcode by opcode: building the sets in this process would be
just as quadratic. No test measures time: each checks that the refusal comes from the
collision count (it names it) and that the unpickler stopped after a few thousand items, a
number fixed by ``COLLISION_BUDGET``, not by the machine's speed.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from test_code_helpers import TOY_ROWS, write_samples
from test_code_wire_bounds import BIG_ROW, FORGE, scorer_run

from evalsuite.scoring.sandbox import wire, wire_cost
from evalsuite.scoring.sandbox.wire_hashing import weight

P5 = pickle.PROTO + b"\x05"
M61 = 2**61 - 1  # CPython hashes an int modulo this prime
WIDE = wire.Bound(wire.MAX_PAYLOAD, 2**40)  # a bound that lets any size through


def long1(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def colliding(n: int, start: int = 0) -> list[bytes]:
    """n distinct ints that all hash to 7, as LONG1 opcodes."""
    return [long1(7 + k * M61) for k in range(start, start + n)]


def batched(opener: bytes, items: list[bytes], closer: bytes, size: int = 1000) -> bytes:
    """A container as ``encode`` writes it: its opener, then MARK, items, closer per batch."""
    parts = [opener]
    for at in range(0, len(items), size):
        parts += [pickle.MARK, *items[at : at + size], closer]
    return b"".join(parts)


N = 200_000  # quadratic: ~2e10 comparisons, minutes of CPU for the C unpickler
HOSTILE = {
    "set": P5 + batched(pickle.EMPTY_SET, colliding(N), pickle.ADDITEMS) + pickle.STOP,
    "dict keys": P5
    + batched(pickle.EMPTY_DICT, [i + pickle.NONE for i in colliding(N)], pickle.SETITEMS)
    + pickle.STOP,
    "frozenset in a list": P5
    + pickle.EMPTY_LIST
    + pickle.MARK
    + pickle.MARK
    + b"".join(colliding(N))
    + pickle.FROZENSET
    + pickle.APPENDS
    + pickle.STOP,
    "set of tuples": P5
    + batched(
        pickle.EMPTY_SET,
        [pickle.BININT1 + b"\1" + i + pickle.TUPLE2 for i in colliding(N)],
        pickle.ADDITEMS,
    )
    + pickle.STOP,
    "one dict item at a time": P5
    + pickle.EMPTY_DICT
    + b"".join(i + pickle.NONE + pickle.SETITEM for i in colliding(N // 4))
    + pickle.STOP,
}


def refused_after(payload: bytes) -> int:
    """Decode on the counting unpickler; how many items it had hashed when it refused."""
    decoder = wire._CountingDecoder(io.BytesIO(payload), wire_cost.thread_deadline())
    with pytest.raises(wire.Implausible, match="collide in hash"):
        decoder.load()
    assert decoder.spent > decoder.budget
    return sum(sum(counts.values()) for _, counts in decoder.counts.values())


@pytest.mark.parametrize("name", list(HOSTILE))
def test_colliding_hashes_are_refused_before_the_quadratic_work(name: str) -> None:
    payload = HOSTILE[name]
    # the payload passes the memory bound of a big answer: the old decode would build it
    cost = wire_cost.scan(payload)
    expected = wire.encode(list(range(1_000_000)))
    bound = wire.bound_for(len(expected), wire.decode_cost(expected))
    assert len(payload) <= bound.size
    assert cost.memory + wire_cost.HASH_COUNT_BYTES * cost.hashed < bound.memory
    assert cost.hashed * cost.hashed_bytes > wire_cost.FAST_HASH_WORK  # the counting path
    with pytest.raises(wire.Implausible, match="collide in hash"):
        wire.decode(payload, bound)
    # it stopped after ~sqrt(2 * budget) items of one hash (~1450 of 200k), so the
    # comparisons it let through are ~COLLISION_BUDGET, whatever the machine
    assert refused_after(payload) <= (2 * wire_cost.COLLISION_BUDGET) ** 0.5 + 2


def test_big_colliding_items_weigh_more() -> None:
    """Few items, but each comparison walks 5000 elements: the charge is per element."""
    prefix = b"".join(pickle.BININT1 + bytes([i % 250]) for i in range(5000))
    items = [pickle.MARK + prefix + i + pickle.TUPLE for i in colliding(300)]
    payload = P5 + pickle.EMPTY_SET + pickle.MARK + b"".join(items) + pickle.ADDITEMS
    payload += pickle.STOP  # 300 tuples that differ in their last element only
    assert weight((0,) * 5000) > 5000
    with pytest.raises(wire.Implausible, match="collide in hash"):
        wire.decode(payload, WIDE)
    assert refused_after(payload) <= (2 * wire_cost.COLLISION_BUDGET / 5000) ** 0.5 + 2  # ~21


def test_a_few_collisions_still_decode_in_c() -> None:
    """Under FAST_HASH_WORK the C unpickler builds it: quadratic, but small."""
    payload = P5 + batched(pickle.EMPTY_SET, colliding(1000), pickle.ADDITEMS) + pickle.STOP
    cost = wire_cost.scan(payload)
    assert cost.hashed == 1000 and cost.hashed * cost.hashed_bytes <= wire_cost.FAST_HASH_WORK
    assert wire.decode(payload, WIDE) == {7 + k * M61 for k in range(1000)}


HONEST = {
    "set of 200k ints": set(range(-100_000, 100_000)),
    "set of 200k strs": {f"s{i}" for i in range(200_000)},
    "frozenset in a list": [frozenset(range(200_000)), 1],
    "dict of 100k": {str(i): [i, float(i)] for i in range(100_000)},
    "int keys": {i: None for i in range(200_000)},
    "set of tuples": {(i, f"{i}", (i * 0.5,)) for i in range(100_000)},
    "tags in sets": [
        {1 + 2j, np.float64(0.5), np.int64(3)},
        {k: np.arange(3) for k in range(9000)},
    ],
}


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_sets_and_dicts_decode_to_equal_values(name: str) -> None:
    value = HONEST[name]
    payload = wire.encode(value)
    cost = wire_cost.scan(payload)
    assert cost.hashed * cost.hashed_bytes > wire_cost.FAST_HASH_WORK  # the counting path
    got = wire.decode(payload, wire.bound_for(len(payload), cost.memory))
    fast = wire._Decoder(io.BytesIO(payload)).load()  # what the C unpickler makes of it
    if name == "tags in sets":
        assert got[0] == fast[0] == value[0] and got[1].keys() == value[1].keys()
        assert all((got[1][k] == value[1][k]).all() for k in value[1])
        return
    assert got == value == fast
    assert type(got) is type(value)
    if isinstance(got, list):
        assert [type(x) for x in got] == [type(x) for x in value]


def test_the_counting_path_decodes_what_the_c_path_does() -> None:
    """Same opcodes, same values: the round trip gives the same bytes on both paths."""
    value = [1, 2.5, "é", None, True, (1, (2,)), {"a": {3, 4}}, frozenset({1}), b"b", 10**400]
    value += [np.arange(6).reshape(2, 3), wire.Opaque("x"), -(2**70), {(1, 2): [3]}]
    payload = wire.encode(value)
    deadline = wire_cost.thread_deadline()
    assert wire.encode(wire._CountingDecoder(io.BytesIO(payload), deadline).load()) == payload
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        wire._CountingDecoder(io.BytesIO(pickle.dumps(print)), deadline).load()


def nested(depth: int, around: bytes = b"") -> bytes:
    """A value ``depth`` tuples deep (``((((None,),),),)``), in ``around``'s container."""
    inner = pickle.NONE + pickle.TUPLE1 * depth
    if around == pickle.FROZENSET:
        inner = pickle.MARK + inner + pickle.FROZENSET
    return P5 + inner + pickle.STOP


def test_deep_nesting_is_refused_before_anything_recurses() -> None:
    """A million nested tuples in a frozenset: hashing them overflowed the C stack (SIGSEGV)."""
    for payload in (nested(10**6, pickle.FROZENSET), nested(10**6)):
        with pytest.raises(wire.Implausible, match="nested over"):
            wire.decode(payload, WIDE)
    assert wire.decode(nested(wire_cost.MAX_DEPTH), WIDE) is not None
    with pytest.raises(wire.Implausible, match="nested over"):
        wire.decode(nested(wire_cost.MAX_DEPTH + 1), WIDE)
    deep_list = P5 + pickle.EMPTY_LIST * 200 + pickle.APPEND * 199 + pickle.STOP
    with pytest.raises(wire.Implausible, match="nested over"):
        wire.decode(deep_list, WIDE)


@pytest.mark.parametrize(
    "payload",
    [
        P5 + b"L" + b"9" * 100_000 + b"L\n" + pickle.STOP,  # decimal text: quadratic to parse
        P5 + b"I" + b"9" * 100_000 + b"\n" + pickle.STOP,
        P5 + b"F" + b"9" * 100_000 + b"\n" + pickle.STOP,
    ],
    ids=["LONG", "INT", "FLOAT"],
)
def test_text_numbers_are_refused(payload: bytes) -> None:
    """``encode`` writes ints as LONG1/LONG4 bytes (linear); the text forms never."""
    with pytest.raises(wire.Implausible, match="never written"):
        wire.decode(payload, WIDE)
    assert wire.decode(wire.encode(10**4000), WIDE) == 10**4000


def test_both_passes_stop_at_the_deadline() -> None:
    """The backstop for what the counts miss: thread CPU time, looked at as they go."""
    payload = wire.encode(list(range(100_000)))
    with pytest.raises(wire.Implausible, match="s of CPU"):
        wire_cost.scan(payload, deadline=0.0)
    with pytest.raises(wire.Implausible, match="s of CPU"):
        wire._CountingDecoder(io.BytesIO(payload), 0.0).load()
    assert wire_cost.scan(payload).memory == wire.decode_cost(payload)


COLLIDE = "bytes([0x80, 5, 0x8f]) + b''.join(b'(' + b''.join(long1(7 + k * (2**61 - 1))"
COLLIDE += " for k in range(s, s + 1000)) + b'\\x90' for s in range(0, 200000, 1000)) + b'.'"
LONG1 = """
def long1(value):
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\\x8a" + bytes([len(raw)]) + raw

"""


def test_a_colliding_set_in_the_real_sandbox_is_a_wrong_output(tmp_path: Path) -> None:
    """Forged on the report pipe by a program; the honest program beside it still passes."""
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in [*TOY_ROWS, BIG_ROW]))
    samples = [
        {
            "task_id": "Big/0",
            "solution": FORGE + LONG1 + f"def seq(n):\n    forge({COLLIDE})\n    return []\n",
        },
        {"task_id": "Big/0", "solution": "def seq(n):\n    return list(range(n))\n"},
        {"task_id": "Toy/0", "solution": "def add(a, b):\n    return a + b\n"},
    ]
    verdicts, _ = scorer_run(write_samples(tmp_path / "samples.jsonl", samples), dataset)
    assert [status for _, status, _, _ in verdicts] == ["fail", "pass", "pass"]
    assert "output refused" in verdicts[0][3] and "collide in hash" in verdicts[0][3]
