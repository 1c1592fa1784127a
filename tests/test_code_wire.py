"""The sandbox -> scorer channel: values travel as data, and bytes cannot run code here."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pytest

from evalsuite.scoring.sandbox import wire


def test_plain_values_round_trip() -> None:
    value = [1, 2.5, "x", None, True, (1, (2,)), {"a": {3, 4}}, frozenset({1}), b"b", 10**40]
    assert wire.decode(wire.encode(value)) == value


def test_equal_values_encode_alike_whatever_they_share() -> None:
    s = "a" * 50
    assert wire.encode([s, s]) == wire.encode([s, "".join(["a"] * 50)])
    assert wire.encode([1, 2]) != wire.encode([1, 2.0])


def test_refuses_globals_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(EvilReduce(str(marker)))
    with pytest.raises(wire.DecodeError):
        wire.decode(evil)
    assert not marker.exists()
    with pytest.raises(wire.DecodeError):
        wire.decode(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(wire.DecodeError):
        wire.decode(b"\x80\x05not a pickle")


class EvilReduce:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_numpy_travels_as_numpy() -> None:
    got = wire.decode(wire.encode([np.float64(0.5), np.arange(6, dtype=np.int32).reshape(2, 3)]))
    assert type(got[0]) is np.float64 and got[0] == 0.5
    assert got[1].dtype == np.int32 and got[1].shape == (2, 3) and got[1][1, 2] == 5


def test_subclasses_and_objects() -> None:
    point = collections.namedtuple("Point", "x y")(1, 2)
    got = wire.decode(wire.encode(point))
    assert isinstance(got, wire.SubValue) and got == (1, 2) and type(got) is not tuple

    class Sneaky:
        def __eq__(self, other):  # a program's way to "equal" any answer
            return True

    got = wire.decode(wire.encode([Sneaky()]))
    assert got != [1] and got[0] != got[0]
    assert isinstance(got[0], wire.Opaque)

    class Weird(tuple):
        def __eq__(self, other):
            return True

    assert isinstance(wire.decode(wire.encode(Weird((1,)))), wire.Opaque)


def test_recursive_values_cannot_be_sent() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="cyclic"):  # pickle's fast mode detects the cycle
        wire.encode(loop)


def test_records_split_across_reads_and_bad_ones_refused() -> None:
    blob = wire.record(wire.OUT, 0, wire.encode(42), sign=True) + wire.record(wire.EXC, 1, b"x")
    reader = wire.RecordReader()
    got = reader.feed(blob[:10]) + reader.feed(blob[10:40]) + reader.feed(blob[40:])
    assert [(k, i) for k, i, _, _ in got] == [(wire.OUT, 0), (wire.EXC, 1)]
    assert got[0][2] == wire.digest(got[0][3]) and wire.decode(got[0][3]) == 42
    with pytest.raises(wire.DecodeError):
        wire.RecordReader().feed(wire.RECORD.pack(wire.OUT, 0, wire.MAX_PAYLOAD + 1, b"0" * 16))
    with pytest.raises(wire.DecodeError):
        wire.RecordReader().feed(wire.RECORD.pack(99, 0, 0, b"0" * 16))
