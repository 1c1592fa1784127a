"""How deeply JSON nests: measured on the raw bytes before parsing, and on stored values.

Python's ``json`` recurses once per level (RecursionError near 1,000) and the response
serializer gives up near 255, so a request nested deeper than that is a 500 while parsing,
and a stored value deeper than that makes every later read of it a 500. The API refuses
bodies deeper than ``EVALSUITE_API_MAX_JSON_DEPTH`` before parsing them, with a scan that
does not recurse, and :func:`readable` keeps a row stored before the limit from breaking a
read.
"""

from __future__ import annotations

import re
from itertools import accumulate, islice
from typing import Any

# One JSON string, escapes honoured; an unterminated one runs to the end, so a stray quote
# never makes the scan go back (linear time on any input).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.S)
_TOKEN = re.compile(_STRING.pattern + rb"|[\[\]{}]", re.S)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# finding the byte offset is a Python loop over tokens: bounded, it is only a courtesy
_LOCATE_TOKENS = 1_000_000


def max_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Strings are cut out first (brackets inside them do not count), then every remaining
    bracket becomes +1 or -1; the depth is the highest running sum. All of it runs in C
    except the running sum, which only sees the brackets.
    """
    steps = _STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def _offset_beyond(body: bytes, limit: int) -> int | None:
    """The byte offset of the first bracket that opens level ``limit + 1`` (None: not found
    within the first tokens)."""
    depth = 0
    for match in islice(_TOKEN.finditer(body), _LOCATE_TOKENS):
        char = body[match.start()]
        if char in b"[{":
            depth += 1
            if depth > limit:
                return match.start()
        elif char in b"]}":
            depth -= 1
    return None


def depth_problem(body: bytes, limit: int) -> str | None:
    """Why ``body`` is refused (nested deeper than ``limit``), or None when it is not."""
    depth = max_depth(body)
    if depth <= limit:
        return None
    offset = _offset_beyond(body, limit)
    where = f" (level {limit + 1} opens at byte {offset})" if offset is not None else ""
    return (
        f"request body: JSON nested {depth} levels deep{where}; the limit is {limit} "
        "(EVALSUITE_API_MAX_JSON_DEPTH): flatten the data, or send deep structures as a string"
    )


def value_depth(value: Any, stop: int) -> int:
    """The nesting depth of a parsed value, counting no further than ``stop + 1``.

    Iterative, so a value of any depth is measured without recursion.
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > stop:
                return depth
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def readable(value: dict[str, Any], limit: int, what: str) -> dict[str, Any]:
    """``value`` if the response can carry it, else an explanation in its place.

    Writes refuse anything deeper than ``limit``; a row stored before that limit existed
    would otherwise fail every read that includes it.
    """
    if value_depth(value, limit) <= limit:
        return value
    return {
        "evalsuite_unreadable": f"this {what} is stored nested deeper than {limit} levels, "
        "more than the API can return (EVALSUITE_API_MAX_JSON_DEPTH); it was stored before "
        "that limit was enforced: read it from the database directly"
    }
