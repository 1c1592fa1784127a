"""What a sandboxed program may tell the scorer, and how the scorer reads it without trusting it.

A program under test never reports a verdict. It reports *data*: for each test input, the
value the function returned (or the exception it raised), as a record on a pipe. The scorer
decides, in its own process, by comparing that data with expected outputs the sandbox never
had in memory. So printing "PASSED", exiting with 0, patching ``assert``, builtins,
``numpy.allclose`` or the harness itself cannot produce a pass: the only way to get one is
to send the right outputs, which means computing them.

Record layout (little endian): kind u8, index u32, payload length u32, digest 16 bytes,
payload. For an output, payload = ``encode(value)`` and digest = BLAKE2b-128 of it; the
scorer holds the digests of the expected outputs, so a match costs one bytes comparison.
On a mismatch the payload is decoded (see ``decode``) and compared with the EvalPlus /
bigcode rules (float tolerance, ``1 == 1.0 == True``, ...).

``encode`` is a pickle in "fast" mode (no memo, so equal values give equal bytes whatever
object sharing they have) whose only non-builtin constructor is ``_tag``; ``decode`` is an
unpickler that refuses every other global, so untrusted bytes cannot run code in the scorer.
Values outside plain Python data (numpy scalars and arrays, subclasses of builtins, any
other object) travel as tags: numpy as dtype + raw bytes, a subclass whose ``__eq__`` is
inherited as its builtin value, anything else as an opaque marker that equals nothing.

Refusing globals is not enough: pickle amplifies (12 MiB of ``EMPTY_SET`` opcodes are 3 GB
of sets). So ``decode`` first checks the payload against a ``Bound``, unread: its size, then
``wire_cost.decode_cost``, an upper bound of what unpickling it would allocate found by a
pass over its opcodes that creates no object (and refuses any opcode ``encode`` never
writes). The scorer derives the bound from the encoding of the expected output
(``bound_for``): an output that could equal the answer is a few times its size at most, so
anything far beyond is a wrong output, refused unread.

The bound covers CPU as well as memory: the scan also refuses values nested deeper than
``MAX_DEPTH`` and counts the items going into sets, frozensets and dicts, whose hashes an
attacker can make collide (building such a set is quadratic: 4M ints of one hash would take
days). Payloads whose hashed containers could cost over ``FAST_HASH_WORK`` are decoded by
``wire_hashing``'s Python unpickler, which refuses them once collisions cost more than
``COLLISION_BUDGET`` comparisons; the others, nearly every honest output, by the C
unpickler. Both the scan and the Python unpickler give up after ``DECODE_SECONDS`` of CPU.
Whatever the reason, a refusal is ``Implausible``: for the scorer, a wrong output.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any

from evalsuite.scoring.sandbox.wire_cost import (
    FAST_HASH_WORK,
    HASH_COUNT_BYTES,
    scan,
    thread_deadline,
)
from evalsuite.scoring.sandbox.wire_cost import DecodeError as DecodeError
from evalsuite.scoring.sandbox.wire_cost import Implausible as Implausible
from evalsuite.scoring.sandbox.wire_cost import decode_cost as decode_cost
from evalsuite.scoring.sandbox.wire_hashing import CountingUnpickler

RECORD = struct.Struct("<BII16s")
MAX_PAYLOAD = 64 * 2**20  # one output; the largest expected HumanEval+ output is ~9 MB

OUT, EXC, TIMEOUT, UNENCODABLE, STAGE = 1, 2, 3, 4, 5
STAGE_LOADED, STAGE_DONE = 1, 2  # informational only: never trusted for a verdict
NO_DIGEST = b"\0" * 16

_PLAIN = (bool, int, float, str, bytes, type(None), list, tuple, dict, set, frozenset)
_SUBCLASSABLE = (int, float, str, bytes, tuple, list, dict, set, frozenset)
_DTYPE = re.compile(r"^[<>|=]?[biufc?][0-9]{0,2}$")


def digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


class _Encoder(pickle.Pickler):
    """Plain data as pickle, everything else as a ``_tag`` call the decoder understands."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN or obj is _tag:  # _tag itself pickles by reference
            return NotImplemented
        if kind is complex:
            return _tag, ("complex", obj.real, obj.imag)
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, numpy.generic | numpy.ndarray):
            if obj.dtype.hasobject or not _DTYPE.match(obj.dtype.str):
                return _tag, ("opaque", f"numpy {obj.dtype}")
            if isinstance(obj, numpy.generic):
                return _tag, ("npscalar", obj.dtype.str, obj.tobytes())
            return _tag, ("nparray", obj.dtype.str, tuple(obj.shape), obj.tobytes())
        for base in _SUBCLASSABLE:
            if isinstance(obj, base):
                if kind.__eq__ is base.__eq__ and kind.__ne__ is base.__ne__:
                    return _tag, ("sub", base.__name__, kind.__qualname__, base(obj))
                break
        return _tag, ("opaque", kind.__qualname__)


def encode(value: Any) -> bytes:
    """Deterministic bytes for a value (raises on recursion or unpicklable plain data)."""
    buffer = io.BytesIO()
    encoder = _Encoder(buffer, protocol=5)
    encoder.fast = True  # no memo: [s, s] and [s, copy(s)] encode alike
    encoder.dump(value)
    return buffer.getvalue()


def record(kind: int, index: int, payload: bytes = b"", sign: bool = False) -> bytes:
    return RECORD.pack(kind, index, len(payload), digest(payload) if sign else NO_DIGEST) + payload


class SubValue:
    """A builtin value that came as a subclass: equal like its value, but not the same type."""

    __slots__ = ("type_name", "value")

    def __init__(self, type_name: str, value: Any) -> None:
        self.type_name, self.value = type_name, value

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, SubValue) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"{self.type_name}({self.value!r})"

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError("SubValue takes no state")


class Opaque:
    """A value the sandbox could not send as data; it equals nothing, itself included."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError("Opaque takes no state")


def _tag(kind: str, *args: Any) -> Any:
    """Rebuild a tagged value on the scorer's side; every argument is checked first."""
    if kind == "complex" and len(args) == 2 and all(type(a) is float for a in args):
        return complex(*args)
    if kind == "sub" and len(args) == 3 and all(type(a) is str for a in args[:2]):
        return SubValue(args[1], args[2])
    if kind == "opaque" and len(args) == 1 and type(args[0]) is str:
        return Opaque(args[0])
    if kind in ("npscalar", "nparray"):
        import numpy

        dtype_str, raw = args[0], args[-1]
        if type(dtype_str) is not str or not _DTYPE.match(dtype_str) or type(raw) is not bytes:
            raise pickle.UnpicklingError("bad numpy tag")
        dtype = numpy.dtype(dtype_str)
        if kind == "npscalar" and len(args) == 2 and len(raw) == dtype.itemsize:
            return numpy.frombuffer(raw, dtype=dtype)[0]
        shape = args[1] if len(args) == 3 else None
        if type(shape) is tuple and all(type(n) is int and n >= 0 for n in shape):
            count = 1
            for n in shape:
                count *= n
            if count * dtype.itemsize == len(raw):
                return numpy.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    raise pickle.UnpicklingError(f"bad tag {kind!r}")


class _Decoder(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_tag":
            return _tag
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


class _CountingDecoder(CountingUnpickler):
    """``_Decoder``'s refusals on the unpickler that counts hash collisions (``wire_hashing``)."""

    find_class = _Decoder.find_class
    persistent_load = _Decoder.persistent_load


@dataclass(frozen=True)
class Bound:
    """How big a payload may be, and how many bytes decoding it may allocate (``decode_cost``)."""

    size: int
    memory: int


# An output that equals the answer under the comparison rules (``1 == 1.0 == np.int64(1)``,
# subclasses, np.allclose) can encode bigger than the answer: a numpy scalar travels as a tag
# of ~66 bytes where a small int takes 2 and a bool 1. Over every expected HumanEval+ output
# made of numpy scalars or subclasses, the worst is 13x the size and 4.3x the memory; a long
# list of bools as numpy bools is 59x and 11x (tests/test_code_wire_bounds). The factors
# leave room for those; the floors for small answers (a payload under SIZE_FLOOR cannot
# decode to much over MEMORY_FLOOR: 65536 EMPTY_SET opcodes are ~17 MB of sets).
SIZE_FACTOR, SIZE_FLOOR = 128, 64 * 2**10
MEMORY_FACTOR, MEMORY_FLOOR = 16, 16 * 2**20
DEFAULT_BOUND = Bound(MAX_PAYLOAD, 2**30)  # for callers without an expected output


def bound_for(expected_size: int, expected_memory: int) -> Bound:
    """The bound for outputs compared with one whose encoding has this size and cost."""
    size = min(MAX_PAYLOAD, SIZE_FACTOR * expected_size + SIZE_FLOOR)
    return Bound(size, MEMORY_FACTOR * expected_memory + MEMORY_FLOOR)


def decode(payload: bytes, bound: Bound = DEFAULT_BOUND) -> Any:
    """The value behind untrusted ``encode`` bytes; plain data and the tags above only.

    Raises ``Implausible`` for a payload over ``bound`` (before unpickling anything), for one
    whose sets or dicts collide in hash past ``COLLISION_BUDGET`` (before building them), and
    for one that would take over ``DECODE_SECONDS`` of CPU; ``DecodeError`` for bad bytes.
    """
    if len(payload) > bound.size:
        raise Implausible(f"{len(payload)} bytes where at most {bound.size} are plausible")
    deadline = thread_deadline()
    cost = scan(payload, bound.memory, deadline)
    slow = cost.hashed * cost.hashed_bytes > FAST_HASH_WORK
    if slow and cost.memory + HASH_COUNT_BYTES * cost.hashed > bound.memory:
        raise Implausible(f"decoding would take over {bound.memory:.0f} bytes")
    try:
        if slow:
            return _CountingDecoder(io.BytesIO(payload), deadline).load()
        return _Decoder(io.BytesIO(payload)).load()
    except Implausible:
        raise
    except Exception as e:
        raise DecodeError(f"{type(e).__name__}: {e}") from None


class RecordReader:
    """Splits a byte stream into records; refuses oversized or malformed ones."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes, bytes]]:
        self._buffer += data
        out, view, at = [], memoryview(self._buffer), 0
        try:
            while len(view) - at >= RECORD.size:
                kind, index, size, sig = RECORD.unpack_from(view, at)
                if size > MAX_PAYLOAD or kind not in (OUT, EXC, TIMEOUT, UNENCODABLE, STAGE):
                    raise DecodeError(f"malformed record (kind {kind}, {size} bytes)")
                end = at + RECORD.size + size
                if len(view) < end:
                    break
                out.append((kind, index, sig, bytes(view[at + RECORD.size : end])))
                at = end
        finally:
            view.release()
        del self._buffer[:at]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)
