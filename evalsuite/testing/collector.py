"""A sandbox verifier that decides nothing: it keeps every record (for tests and benchmarks
that look at what a program sent, not at a verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field

from evalsuite.scoring.sandbox.box import ExitInfo


@dataclass
class Collector:
    """A verifier that decides nothing: keeps the records (for scripts and tests)."""

    records: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)

    def feed(self, kind: int, index: int, sig: bytes, payload: bytes) -> bool:
        self.records.append((kind, index, sig, payload))
        return False

    def finish(self, exit: ExitInfo) -> tuple[ExitInfo, list[tuple[int, int, bytes, bytes]]]:
        return exit, self.records
