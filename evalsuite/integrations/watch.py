"""``evalsuite watch RUN_DIR``: register a training run's checkpoints as they appear, for
training code that cannot take the callback.

A ``checkpoint-<step>`` directory is taken once it is complete: its config and weights are
there (an adapter's ``adapter_config.json`` and ``adapter_model.*``, or a full model's
``config.json`` and ``model*.safetensors``) and no file in it changed size or time for
``settle_s`` seconds, so a checkpoint still being written is never hashed. Each is sent
through the same spool and background sender as the callback's (so the watch also replays
what a callback left in ``RUN_DIR``). Restarting the watch is safe: the service dedupes on
the checkpoint's sha256, so a checkpoint registered before is answered with the stored one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.adapters.base import CONFIG_FILE, WEIGHT_FILES, run_checkpoints
from evalsuite.client import ApiClient
from evalsuite.integrations.sender import Sender
from evalsuite.integrations.spool import Entry, Spool

log = logging.getLogger("evalsuite.integrations")


@dataclass
class WatchSpec:
    """What ``evalsuite watch`` registers, and how patiently."""

    run_dir: Path
    run: str
    suites: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    new_run: dict[str, Any] = field(default_factory=dict)
    settle_s: float = 5.0
    poll_s: float = 1.0
    final_on_exit: bool = False
    final_wait_s: float = 60.0


def _written(path: Path) -> bool:
    """Config and weights present (an adapter or a full model)."""
    if (path / CONFIG_FILE).is_file():
        return any((path / name).is_file() for name in WEIGHT_FILES)
    if (path / "config.json").is_file():
        return any(path.glob("model*.safetensors"))
    return False


def _signature(path: Path) -> tuple[tuple[str, int, int], ...] | None:
    """Every file's (name, size, mtime): a checkpoint still being written changes it."""
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return tuple((str(p.relative_to(path)), *_stat(p)) for p in files)
    except FileNotFoundError:  # a file vanished while we looked: not settled
        return None


def _stat(file: Path) -> tuple[int, int]:
    st = file.stat()
    return st.st_size, st.st_mtime_ns


class Watcher:
    """Scans ``spec.run_dir`` every ``poll_s``; ``scan`` is one look (the tests drive it)."""

    def __init__(self, spec: WatchSpec, client: Callable[[], ApiClient]) -> None:
        self.spec = spec
        self.sender = Sender(Spool(spec.run_dir), client)
        self.taken: dict[Path, Entry] = {}
        self._seen: dict[Path, tuple[Any, float]] = {}  # path -> (signature, first seen so)

    def scan(self, now: float | None = None) -> list[Path]:
        """Queue every checkpoint that has settled since the last look; those queued."""
        now = time.monotonic() if now is None else now
        queued = []
        for path in run_checkpoints(self.spec.run_dir) if self.spec.run_dir.is_dir() else []:
            path = path.resolve()
            if path in self.taken or not _written(path):
                continue
            signature = _signature(path)
            before = self._seen.get(path)
            if signature is None or before is None or before[0] != signature:
                self._seen[path] = (signature, now)  # new or changed: wait for it to settle
                continue
            if now - before[1] < self.spec.settle_s:
                continue
            entry = Entry(
                run=self.spec.run,
                path=str(path),
                suites=self.spec.suites,
                options=self.spec.options,
                new_run=self.spec.new_run,
            )
            self.taken[path] = entry
            self.sender.add(entry)
            queued.append(path)
            log.info("evalsuite watch: %s is complete; registering it", path.name)
        return queued

    def mark_last_final(self) -> None:
        """The checkpoint of the highest step this watch took is the run's final one."""
        if self.taken:
            last = max(self.taken, key=lambda p: int(p.name.rsplit("-", 1)[1]))
            self.sender.mark_final(self.taken[last])

    def run(self, stop: threading.Event, once: bool = False) -> list[Entry]:
        """Watch until ``stop`` is set (or, with ``once``, until every checkpoint whose files
        are there is taken); then wait up to ``final_wait_s`` for the sender. What was not sent."""
        self.sender.start()
        log.info(
            "evalsuite watch: %s as run %r (a checkpoint is taken when unchanged for %g s)",
            self.spec.run_dir, self.spec.run, self.spec.settle_s,
        )  # fmt: skip
        while not stop.is_set():
            self.scan()
            if once and self._all_taken():
                break
            stop.wait(self.spec.poll_s)
        if self.spec.final_on_exit:
            self.mark_last_final()
        return self.sender.close(self.spec.final_wait_s)

    def _all_taken(self) -> bool:
        found = run_checkpoints(self.spec.run_dir) if self.spec.run_dir.is_dir() else []
        return all(p.resolve() in self.taken for p in found if _written(p))
