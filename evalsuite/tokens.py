"""Who a bearer token is and which runs it may write: one line of ``EVALSUITE_API_TOKEN_FILE``.

A line is ``TOKEN`` followed by optional ``key=value`` fields, separated by whitespace::

    ci-4f1c...                                  # unscoped: every write, workers included
    a1b2... name=alice runs=team-a-*            # only runs whose name matches team-a-*
    c3d4... name=bob runs=team-b-*,shared-*     # several patterns, comma-separated

``name`` labels the token (it is what a checkpoint records as ``registered_by``); ``runs``
scopes it to run names matching any of its globs (``fnmatch``, case-sensitive: ``*`` any
text, ``?`` one character, ``[ab]`` one of). A scoped token may create and write only runs
in its scope and never acts as a worker (claim, heartbeat, complete, fail, release), since
a worker writes whichever job the queue hands it. The secret is never stored: a token
without a name is labelled by its fingerprint, ``sha256:`` and the first 8 hex digits of
the SHA-256 of the token.

Parsing lives here, without settings or FastAPI, so the settings (which read the file) and
the API (which enforces the scope) share one definition.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

SYNTAX = "TOKEN [name=NAME] [runs=GLOB[,GLOB...]]"
KEYS = ("name", "runs")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FINGERPRINT_PREFIX = "sha256:"
FINGERPRINT_HEX = 8
# the longest label a checkpoint records: a 64-character name (a fingerprint is shorter)
LABEL_MAX = 64


def fingerprint(secret: str) -> str:
    """A short, non-reversible label for a token that has no name (``sha256:1a2b3c4d``)."""
    return FINGERPRINT_PREFIX + hashlib.sha256(secret.encode()).hexdigest()[:FINGERPRINT_HEX]


@dataclass(frozen=True)
class Grant:
    """One accepted token: its secret, its name, and the run-name globs it may write
    (``runs=None``: unscoped, every write including the workers')."""

    secret: str = field(repr=False)
    name: str | None = None
    runs: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """What is recorded and shown for this token: its name, else its fingerprint."""
        return self.name or fingerprint(self.secret)

    @property
    def scoped(self) -> bool:
        return self.runs is not None

    @property
    def scope(self) -> str:
        """The globs as written in the file (``*`` for an unscoped token)."""
        return ",".join(self.runs) if self.runs is not None else "*"

    def allows(self, run: str) -> bool:
        """Whether this token may write run ``run``."""
        return self.runs is None or any(fnmatchcase(run, glob) for glob in self.runs)


def parse_line(line: str) -> Grant:
    """One stripped, non-comment line of the token file; ValueError says what is wrong."""
    secret, *extras = line.split()
    values: dict[str, str] = {}
    allowed = " and ".join(f"{key}=" for key in KEYS)
    for position, extra in enumerate(extras, start=2):
        key, sep, value = extra.partition("=")
        # the field itself is not quoted: a token split by a space would leak into the log
        if not sep:
            raise ValueError(
                f"word {position} is not key=value: a token holds no spaces, and only "
                f"{allowed} may follow it"
            )
        if key not in KEYS:
            raise ValueError(f"{key}= is not a field: only {allowed} may follow the token")
        if key in values:
            raise ValueError(f"{key}= is given twice")
        values[key] = value
    name = values.get("name")
    if name is not None and not NAME_RE.fullmatch(name):
        raise ValueError(
            f"name={name!r} is not a name: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    runs = None
    if "runs" in values:
        runs = tuple(values["runs"].split(","))
        if not all(runs):
            raise ValueError(
                f"runs={values['runs']!r} has an empty pattern: give globs separated by single "
                "commas, e.g. runs=team-a-*,shared-*"
            )
    return Grant(secret=secret, name=name, runs=runs)
