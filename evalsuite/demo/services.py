"""The demo's long-running parts (API, worker, dashboard) as ``evalsuite`` child processes.

Each writes to its own log file; a service that dies before it answers is reported with the
last lines of its log, not left to a timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from evalsuite.errors import EvalsuiteError


class ServiceError(EvalsuiteError):
    """A demo service did not start."""


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ServiceError("no free TCP port on 127.0.0.1")


class ServiceProcess:
    """``python -m evalsuite.cli <args>`` with extra environment, output to ``log``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, ready_url: str | None = None, timeout: float = 120.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "evalsuite.cli", *self.args],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo only
            )
        if ready_url is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise ServiceError(
                    f"the {self.name} exited with code {self.process.returncode} before it "
                    f"answered; see {self.log}" + self.log_tail()
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise ServiceError(f"the {self.name} did not answer {ready_url} in {timeout:g} s")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, seconds: float) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(seconds)

    def stop(self) -> None:
        if not self.running():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 8) -> str:
        if not self.log.is_file():
            return ""
        last = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n" + "\n".join(f"  {line}" for line in last) if last else ""
