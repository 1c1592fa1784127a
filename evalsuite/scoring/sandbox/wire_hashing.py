"""An unpickler that counts what hash collisions cost while it builds sets and dicts.

Adding an item to a set, frozenset or dict compares it with every item already there that has
the same hash, and the hashes of ints, floats and tuples are predictable: the ints
``c + k * (2**61 - 1)`` all hash to ``c``, so n of them in one set cost n**2 / 2 comparisons
(60k took the scorer 49 s). The C unpickler builds containers in one call we cannot
interrupt, so ``wire.decode`` sends a payload here when ``wire_cost.scan`` finds its hashed
containers could cost more than ``FAST_HASH_WORK``. This is ``pickle``'s own Python
unpickler (same opcodes, same values), with the container opcodes hashing each item first:
per container it counts the items of each hash, charges each new item
``earlier items of its hash x weight(item)`` and refuses the payload (``Implausible``) once
the charges pass ``COLLISION_BUDGET``, before the container has done the comparisons. The
clock (``time.thread_time``) is checked every ``_CHECK_EVERY`` opcodes as a backstop.

Speed: about 1 s per million opcodes (5-10x slower than the C unpickler), and it only runs
for payloads with thousands of set items or dict keys.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from evalsuite.scoring.sandbox.wire_cost import COLLISION_BUDGET, Implausible, out_of_time

_CHECK_EVERY = 4096  # opcodes between two looks at the clock


def weight(item: Any) -> int:
    """How many comparisons one equality test with ``item`` may cost, about.

    A tuple or frozenset compares item by item, a long str, bytes or int word by word. The
    scan has capped nesting at ``MAX_DEPTH``, so the recursion is shallow.
    """
    kind = type(item)
    if kind is tuple or kind is frozenset:
        return 1 + sum(map(weight, item))
    if kind is str or kind is bytes:
        return 1 + (len(item) >> 6)
    if kind is int:
        return 1 + (item.bit_length() >> 9)
    value = getattr(item, "value", None)  # wire.SubValue compares what it wraps
    return 1 if value is None else 1 + weight(value)


class CountingUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """``pickle``'s Python unpickler, refusing payloads whose containers collide too much.

    Subclasses set ``find_class`` and ``persistent_load`` (``wire`` refuses every global but
    its tag). ``deadline`` is a ``time.thread_time()`` value.
    """

    def __init__(self, file: Any, deadline: float, budget: int = COLLISION_BUDGET) -> None:
        super().__init__(file)
        self.deadline, self.budget, self.spent = deadline, budget, 0
        # id(container) -> (the container, kept alive so the id stays its own; its hash counts)
        self.counts: dict[int, tuple[Any, dict[int, int]]] = {}

    def charge(self, container: Any, items: Iterable[Any]) -> None:
        """Count ``items``' hashes into ``container``'s; refuse once collisions cost too much."""
        entry = self.counts.get(id(container))
        if entry is None:
            entry = self.counts[id(container)] = (container, {})
        counts = entry[1]
        for item in items:
            key = hash(item)
            seen = counts.get(key, 0)
            if seen:
                self.spent += seen * weight(item)
                if self.spent > self.budget:
                    raise Implausible(
                        f"its sets or dict keys collide in hash: over {self.budget} comparisons"
                    )
            counts[key] = seen + 1
        if time.thread_time() > self.deadline:
            raise out_of_time()

    def load(self) -> Any:
        """``pickle._Unpickler.load`` (CPython 3.11-3.13), looking at the clock as it goes."""
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # type: ignore[attr-defined]
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack: list[Any] = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, deadline = self.read, self.dispatch, self.deadline
        countdown = _CHECK_EVERY
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError
                dispatch[key[0]](self)
                countdown -= 1
                if not countdown:
                    countdown = _CHECK_EVERY
                    if time.thread_time() > deadline:
                        raise out_of_time()
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            self.counts.clear()
            return stop.value

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        self.charge(target, items)
        if isinstance(target, set):
            target.update(items)
        else:
            for item in items:
                target.add(item)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.charge(items, items)  # a list of its own: no other container shares its id
        self.append(frozenset(items))
        del self.counts[id(items)]

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        self.charge(target, items[::2])
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_setitem(self) -> None:
        stack = self.stack
        value, key = stack.pop(), stack.pop()
        target = stack[-1]
        self.charge(target, (key,))
        target[key] = value

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.SETITEM[0]] = load_setitem
