"""How much memory and CPU unpickling a payload would take, found before unpickling it.

``wire.decode`` reads bytes a sandboxed program wrote. Its unpickler refuses every
global but one, so the bytes cannot run code here; but pickle amplifies: one byte
(``EMPTY_SET``) makes a 216-byte set, so 12 MiB of them took the scorer to 3 GB, and the memo
(``GET``) or ``DUP`` can make one object appear a million times for two bytes each. So
``decode`` first runs ``scan`` over the payload (``decode_cost`` is its memory figure): a
pass over the opcodes that creates no object, refuses every opcode ``encode`` never writes
(``_OPS`` lists those it does: no memo, no ``DUP``, no ``BUILD``, none of protocols 0-3's
forms, so no text numbers, whose parsing is quadratic) and adds up an upper bound of what
the unpickler would allocate, stopping as soon as that passes the caller's limit.

Memory is not the only cost. Building a set, frozenset or dict hashes each item and compares
it with every earlier item of the same hash, and int and tuple hashes are predictable
(``c + k * (2**61 - 1)`` all hash alike): 60k such ints took the scorer 49 s of CPU, 4M
(which fit the memory bound of a 5 MB answer) would take days. So the pass also counts the
items put into hashed containers (``Cost.hashed``) and the bytes they hold
(``Cost.hashed_bytes``): comparing two items costs at most the smaller one, so
``hashed * hashed_bytes`` bounds that work whatever the hashes. Under ``FAST_HASH_WORK``
(0.1-0.3 s at worst) ``wire.decode`` uses the C unpickler; above it, ``wire_hashing``'s
Python unpickler counts the collisions as it builds. The pass also refuses values nested over
``MAX_DEPTH`` deep (hashing a tuple recurses in C without a check: a million nested tuples
put in a set crash the interpreter), and both passes stop at ``DECODE_SECONDS`` of CPU.

Speed (one core, CPython 3.11): about 1M opcodes a second, so 1.5-3 MB/s on floods of one-
or two-byte opcodes, 20-40 MB/s on lists of ints and floats, GB/s on long strings; the
depth and hash counts made it ~15% slower. Every expected HumanEval+ output (254 MB) decodes,
scan included, in 4.5 s of CPU, the biggest (9 MB) in 0.36 s, all of them on the C unpickler.
A flood stops at the limit.
"""

from __future__ import annotations

import pickle
import time
from typing import NamedTuple

# Payloads whose hashed containers could cost more than this (items x bytes, see the module
# docstring) go through the counting unpickler: ~4700 ints of one hash, ~0.3 s in C at worst.
FAST_HASH_WORK = 2**30
# What the counting unpickler lets hash collisions cost, in item comparisons (a pair of ints
# of one hash is one, ~20 ns; bigger items weigh more, ``wire_hashing.weight``). An honest
# output has next to none: its set items and dict keys are distinct, and distinct ints,
# floats and tuples collide by chance only (str and bytes hashes are salted per process).
COLLISION_BUDGET = 2**20
# CPU seconds (of the scorer's thread) one decode may take, scan included: a backstop for
# whatever the counts above miss. The biggest expected HumanEval+ output takes 0.36 s.
DECODE_SECONDS = 5.0
# How deep a value may nest. HumanEval+ answers nest a few levels (a tag adds one); hashing or
# comparing a deeper value recurses in C (hashing a tuple has no recursion check at all).
MAX_DEPTH = 100
# What ``wire_hashing`` keeps per hashed item on top of what ``decode_cost`` counts: a
# per-container count of each hash (a dict entry, a 64-bit int key, the table's slack).
HASH_COUNT_BYTES = 160


class DecodeError(ValueError):
    """Bytes from a sandbox that are not an encoded value."""


class Implausible(DecodeError):
    """A payload refused: too big, too deep, or too costly (memory, CPU) for its input."""


# Upper bounds, in bytes, of what the unpickler allocates (64-bit CPython 3.11, measured with
# tracemalloc on floods of each opcode, then rounded up): per object an opcode creates, and
# per item a container takes in (list slots; set and dict tables at their worst, just after a
# resize with the old table still there). Stack and mark entries cost _SLOT up to the deepest
# they went (the unpickler never shrinks those arrays). A REDUCE (only ``_tag`` gets that far)
# keeps at most its largest argument (SubValue's value, Opaque's name, a numpy array's copy of
# its bytes) plus one object; numpy's views on the way cost up to _REDUCE_PEAK for a moment.
_SLOT, _INT, _FLOAT, _STR, _BYTES, _TUPLE, _SET = 16, 48, 32, 64, 48, 48, 232
_LIST_ITEM, _DICT_ITEM, _SET_ITEM, _TUPLE_ITEM = 24, 64, 160, 8  # a dict item: key or value
_REDUCED, _REDUCE_PEAK, _OVERHEAD = 128, 512, 4096
_PUSH, _COUNTED, _MARK, _BATCH, _MARKED, _SMALL_TUPLE, _ONE = range(7)
_GLOBAL, _REDUCE, _FRAME, _STOP = range(7, 11)
_HASHED = (_DICT_ITEM, _SET_ITEM)
_CHECK_EVERY = 2**16  # bytes of payload between two looks at the clock
_OPS: dict[int, tuple[int, int, int]] = {}  # opcode -> (kind, argument bytes, object bytes)
for _op, _arg, _obj in [
    (pickle.NONE, 0, 0),
    (pickle.NEWTRUE, 0, 0),
    (pickle.NEWFALSE, 0, 0),
    (pickle.EMPTY_TUPLE, 0, 0),
    (pickle.EMPTY_LIST, 0, 64),
    (pickle.EMPTY_DICT, 0, 72),
    (pickle.EMPTY_SET, 0, _SET),
    (pickle.BININT1, 1, _INT),
    (pickle.BININT2, 2, _INT),
    (pickle.BININT, 4, _INT),
    (pickle.BINFLOAT, 8, _FLOAT),
]:
    _OPS[_op[0]] = (_PUSH, _arg, _obj)
for _op, _width, _obj in [  # a length field, then that many bytes
    (pickle.SHORT_BINUNICODE, 1, _STR),
    (pickle.BINUNICODE, 4, _STR),
    (pickle.SHORT_BINBYTES, 1, _BYTES),
    (pickle.BINBYTES, 4, _BYTES),
    (pickle.LONG1, 1, _INT),
    (pickle.LONG4, 4, _INT),
]:
    _OPS[_op[0]] = (_COUNTED, _width, _obj)
for _op, _kind, _each in [
    (pickle.MARK, _MARK, 0),
    (pickle.APPENDS, _BATCH, _LIST_ITEM),
    (pickle.SETITEMS, _BATCH, _DICT_ITEM),
    (pickle.ADDITEMS, _BATCH, _SET_ITEM),
    (pickle.TUPLE, _MARKED, _TUPLE_ITEM),
    (pickle.FROZENSET, _MARKED, _SET_ITEM),
    (pickle.TUPLE1, _SMALL_TUPLE, 1),
    (pickle.TUPLE2, _SMALL_TUPLE, 2),
    (pickle.TUPLE3, _SMALL_TUPLE, 3),
    (pickle.APPEND, _ONE, 1),
    (pickle.SETITEM, _ONE, 2),
    (pickle.STACK_GLOBAL, _GLOBAL, 0),
    (pickle.REDUCE, _REDUCE, 0),
    (pickle.FRAME, _FRAME, 0),
    (pickle.STOP, _STOP, 0),
]:
    _OPS[_op[0]] = (_kind, 0, _each)


class Cost(NamedTuple):
    """What ``scan`` found a payload would cost to decode."""

    memory: int  # an upper bound of the bytes the C unpickler allocates
    hashed: int  # items put into sets, frozensets and dicts (a dict item counts its key)
    hashed_bytes: int  # the bytes (as in ``memory``) of those items, values included


def decode_cost(payload: bytes, limit: float = float("inf")) -> int:
    """An upper bound of the bytes ``decode`` allocates for ``payload``, found without decoding.

    ``scan(payload, limit).memory``; see ``scan``.
    """
    return scan(payload, limit).memory


def thread_deadline(seconds: float = DECODE_SECONDS) -> float:
    """When (``time.thread_time``) a decode starting now has to be done."""
    return time.thread_time() + seconds


def out_of_time() -> Implausible:
    return Implausible(f"decoding would take over {DECODE_SECONDS:g} s of CPU")


def too_deep() -> Implausible:
    return Implausible(f"a value nested over {MAX_DEPTH} levels deep")


def scan(payload: bytes, limit: float = float("inf"), deadline: float = float("inf")) -> Cost:
    """What decoding ``payload`` would cost, found without decoding it.

    One pass over the opcodes, simulating the unpickler's stack with sizes instead of objects;
    raises ``Implausible`` on an opcode ``encode`` never writes (``_OPS`` lists those it
    does), on a malformed stream, on a value nested over ``MAX_DEPTH``, as soon as the memory
    bound passes ``limit``, or once ``time.thread_time()`` passes ``deadline``. Any sequence
    of opcodes that leaves the stack as deep as it found it adds 8 bytes or more, so the pass
    stops within a number of steps proportional to ``limit`` whatever the payload.
    """
    data, n = payload, len(payload)
    if data[:2] != b"\x80\x05":
        raise Implausible("not a protocol 5 pickle")
    sizes: list[int] = []  # what each stack item holds alive
    kept: list[int] = []  # a tuple's largest element, what a REDUCE on it may keep; else -1
    depths: list[int] = []  # how deep each stack item nests (a scalar: 0)
    marks: list[int] = []
    live = peak = n + _OVERHEAD  # the unpickler's copy of what it reads (frames), its state
    deepest = marked = hashed = hashed_bytes = 0
    i, frame_end, check_at = 2, 2, _CHECK_EVERY
    ops = _OPS
    while i < n:
        if i >= check_at:
            check_at = i + _CHECK_EVERY
            if time.thread_time() > deadline:
                raise out_of_time()
        found = ops.get(data[i])
        if found is None:
            raise Implausible(f"opcode {data[i]:#04x} is never written by encode")
        kind, arg, size = found
        i += 1
        if kind <= _COUNTED:  # _PUSH or _COUNTED
            if kind == _COUNTED:
                length = int.from_bytes(data[i : i + arg], "little")
                i += arg + length
                if i > n:
                    raise Implausible("truncated")
                if size == _STR and not data[i - length : i].isascii():
                    length *= 6  # 2 or 4 bytes a character, and the decoder's scratch copies
                size += 2 * length if size == _INT else length
            else:
                i += arg
            sizes.append(size)
            kept.append(-1)
            depths.append(0)
        elif kind in (_BATCH, _MARKED):
            if not marks:
                raise Implausible("no MARK")
            start = marks.pop()
            count = len(sizes) - start
            moved = sum(sizes[start:])
            largest = max(sizes[start:], default=0)
            depth = 1 + max(depths[start:], default=0)
            if depth > MAX_DEPTH:
                raise too_deep()
            del sizes[start:], kept[start:], depths[start:]
            if size in _HASHED:
                hashed += count // 2 if size == _DICT_ITEM else count
                hashed_bytes += moved
            if kind == _BATCH:
                if not sizes or (size == _DICT_ITEM and count % 2):
                    raise Implausible("bad container update")
                sizes[-1] += moved + size * count
                depths[-1] = max(depths[-1], depth)
                live += size * count
            else:
                made = (_TUPLE if size == _TUPLE_ITEM else _SET) + size * count
                sizes.append(made + moved)
                kept.append(largest if size == _TUPLE_ITEM else -1)
                depths.append(depth)
                live += made
        elif kind in (_SMALL_TUPLE, _ONE):
            if len(sizes) < size + (kind == _ONE):
                raise Implausible("stack underflow")
            moved, largest = sum(sizes[-size:]), max(sizes[-size:])
            depth = 1 + max(depths[-size:])
            if depth > MAX_DEPTH:
                raise too_deep()
            del sizes[-size:], kept[-size:], depths[-size:]
            if kind == _SMALL_TUPLE:
                made = _TUPLE + _TUPLE_ITEM * size
                sizes.append(made + moved)
                kept.append(largest)
                depths.append(depth)
            else:
                made = _LIST_ITEM if size == 1 else 2 * _DICT_ITEM
                if size == 2:  # SETITEM
                    hashed += 1
                    hashed_bytes += moved
                sizes[-1] += moved + made
                depths[-1] = max(depths[-1], depth)
            live += made
        elif kind == _MARK:
            marks.append(len(sizes))
            if len(marks) > marked:
                marked += 1
                live += _SLOT
        elif kind == _GLOBAL:  # a module and a name, freed once looked up
            if len(sizes) < 2:
                raise Implausible("stack underflow")
            live -= sizes.pop() + sizes.pop()
            del kept[-2:], depths[-2:]
            sizes.append(0)
            kept.append(-1)
            depths.append(0)
        elif kind == _REDUCE:
            if len(sizes) < 2:
                raise Implausible("stack underflow")
            args, largest = sizes.pop(), kept.pop()
            largest = args if largest < 0 else largest
            if live + _REDUCE_PEAK + largest > limit:
                raise Implausible(f"decoding would take over {limit:.0f} bytes")
            live += _REDUCED + largest - args - sizes.pop()
            sizes.append(_REDUCED + largest)  # the result takes the callable's place
            kept[-1] = -1
            depths[-1] = depths.pop()  # a tag holds (a part of) its arguments
        elif kind == _FRAME:  # frames tile the stream, none empty
            length = int.from_bytes(data[i : i + 8], "little")
            if i - 1 < frame_end or length == 0 or i + 8 + length > n:
                raise Implausible("bad frame")
            i += 8
            frame_end = i + length
            continue
        else:  # STOP
            if i != n or len(sizes) != 1 or marks:
                raise Implausible("not one value")
            return Cost(peak, hashed, hashed_bytes)
        if kind <= _COUNTED:
            live += size
            if len(sizes) > deepest:
                deepest += 1
                live += _SLOT
        elif len(sizes) > deepest:
            deepest += 1
            live += _SLOT
        if live > peak:
            peak = live
            if peak > limit:
                raise Implausible(f"decoding would take over {limit:.0f} bytes")
    raise Implausible("no STOP")
