"""What a training run still has to send: one small JSON file per checkpoint, on disk.

The training thread only writes an entry here (a few hundred bytes, no network); the
background sender (``sender.Sender``) hashes the checkpoint, sends it and deletes the entry.
An entry still here when the script exits is sent by the next start of the callback in the
same output directory, or by ``evalsuite watch`` on it. Entries are written atomically
(temporary file, then rename), so a crash never leaves half an entry; one the service
refused for good is renamed ``*.rejected`` and kept for the user to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPOOL_DIR = ".evalsuite-spool"  # inside the training's output directory
VERSION = 1


@dataclass
class Entry:
    """One checkpoint to register under ``run``; ``facts`` are filled in once it is hashed."""

    run: str
    path: str
    seq: int = field(default_factory=time.time_ns)
    epoch: float | None = None  # the trainer's own state, used when trainer_state.json is missing
    step: int | None = None
    final: bool = False
    suites: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    new_run: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"{self.seq:020d}-{Path(self.path).name}.json"


class Spool:
    """The entries of one output directory, oldest first."""

    def __init__(self, output_dir: Path) -> None:
        self.dir = Path(output_dir) / SPOOL_DIR

    def write(self, entry: Entry) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{entry.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps({"version": VERSION, **asdict(entry)}))
        os.replace(tmp, self.dir / entry.name)

    def remove(self, entry: Entry) -> None:
        """Sent: forget it (another process replaying the same spool may have done so)."""
        (self.dir / entry.name).unlink(missing_ok=True)

    def reject(self, entry: Entry) -> None:
        """Refused for good: keep it, renamed, so it is not sent again but can be read."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.dir / entry.name, self.dir / f"{entry.name}.rejected")

    def entries(self) -> list[Entry]:
        """Every entry waiting; an unreadable file is left alone (and named by ``unreadable``)."""
        found = []
        for file in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            entry = _read(file)
            if entry is not None:
                found.append(entry)
        return found

    def unreadable(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return [f for f in sorted(self.dir.glob("*.json")) if _read(f) is None]


def _read(file: Path) -> Entry | None:
    try:
        data = json.loads(file.read_text())
        if data.pop("version", None) != VERSION:
            return None
        return Entry(**data)
    except (OSError, ValueError, TypeError):
        return None
