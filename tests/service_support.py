"""Helpers for the store and API tests: a database per backend, a real uvicorn server, and
results in the runner's own ``results.json`` shape with numbers chosen by the test.

PostgreSQL tests use the server at 127.0.0.1:5432 (user postgres, database ``test``), each in
a fresh schema dropped afterwards, since other test runs share that database.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from evalsuite.store import migrate

PG_URL = os.environ.get(
    "EVALSUITE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOKEN = "test-token"
DATA = Path(__file__).resolve().parent / "data" / "service"
BACKENDS = ["sqlite", "postgresql"]


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    import psycopg

    try:
        plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_URL} is unreachable ({str(exc).splitlines()[0]})"


def make_database(backend: str, tmp_path: Path) -> tuple[str, Any]:
    """A fresh, empty database URL for ``backend`` and a function that removes it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}", lambda: None
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"evalsuite_test_{uuid.uuid4().hex[:12]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``evalsuite.api`` under uvicorn in a child process, on a free port; ``cli=True``: as
    ``evalsuite api`` starts it, with its connection limits (evalsuite.api.serve)."""

    def __init__(self, database_url: str, cli: bool = False, **env: str) -> None:
        self.database_url = database_url
        self.cli = cli
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {
            **os.environ,
            "EVALSUITE_DATABASE_URL": self.database_url,
            "EVALSUITE_API_TOKEN": TOKEN,
            **self.env,
        }
        if self.cli:
            command = [sys.executable, "-c", "from evalsuite.cli import main; main()",
                       "api", "--port", str(self.port)]  # fmt: skip
        else:
            command = [sys.executable, "-m", "uvicorn", "evalsuite.api.app:create_app",
                       "--factory", "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}")
            try:
                # with EVALSUITE_API_READ_AUTH=1 even the health check needs the token
                token = self.env.get("EVALSUITE_API_TOKEN", TOKEN)
                auth = {"Authorization": f"Bearer {token}"}
                if httpx.get(f"{self.url}/v1/health", headers=auth, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.kill()  # the caller gets no server to stop: leave no process behind
        raise RuntimeError("uvicorn did not answer /v1/health within 60 s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing gets to clean up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def served(backend: str, tmp_path: Path, cli: bool = False, **env: str):
    """Generator for fixtures: a migrated database and a server on it; both removed after."""
    url, drop = make_database(backend, tmp_path)
    migrate.upgrade(url)
    server = Server(url, cli=cli, **env).start()
    try:
        yield server
    finally:
        server.stop()
        drop()


def real_results() -> dict[str, Any]:
    """The runner's results.json of the example RaSA checkpoint (tiny_gen, tiny_mc)."""
    return json.loads((DATA / "results.json").read_text())


def real_samples() -> dict[str, list[dict[str, Any]]]:
    return {
        task: [
            json.loads(line) for line in (DATA / f"samples_{task}.jsonl").read_text().splitlines()
        ]
        for task in ("tiny_gen", "tiny_mc")
    }


def sample_row(doc_id: str, sample_index: int = 0, verdict: bool | None = True, **fields: Any):
    """A samples-file row with every field the runner writes (``fields`` add or replace)."""
    row = {
        "doc_id": doc_id,
        "prompt_sha256": "ab" * 32,
        "sample_index": sample_index,
        "verdict": verdict,
        "completion": "    return 1\n",
        "details": {"status": "pass" if verdict else "fail"},
    }
    return {**row, **fields}


def results_with(
    scores: dict[str, dict[str, float]],
    partial: bool = False,
    aggregates: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A results.json in the runner's shape with the given {task: {metric: value}}."""
    template = real_results()
    task_template = template["tasks"]["tiny_mc"]
    tasks = {}
    for task, metrics in scores.items():
        entry = copy.deepcopy(task_template)
        entry["metrics"] = {m: {"value": v, "stderr": 0.01, "n": 164} for m, v in metrics.items()}
        entry["partial"] = partial
        entry["config"]["name"] = task
        entry["config"]["limit"] = 5 if partial else None
        tasks[task] = entry
    template["tasks"] = tasks
    template["partial"] = partial
    template["aggregates"] = {
        name: {"value": value, "metrics": {}, "parts": {}, "partial": partial}
        for name, value in (aggregates or {}).items()
    }
    return template
