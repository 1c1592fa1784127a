"""``evalsuite watch`` as a real process against the API under uvicorn on SQLite, on a run
directory where RaSA checkpoints appear one by one, one of them written slowly, one without
trainer_state.json; then restarted with ``--once`` beside a callback's leftover spool."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_support import TOKEN, served

from evalsuite.client import ApiClient, ApiError
from evalsuite.integrations.spool import Entry, Spool
from evalsuite.testing.checkpoints import trainer_dir, write_rasa
from evalsuite.testing.tiny_model import TARGET_MODULES
from evalsuite.worker.submit import checkpoint_facts

SETTLE_S = 2.0


@pytest.fixture
def service(tmp_path):
    yield from served("sqlite", tmp_path)


def _watch(server, run_dir: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", "watch", str(run_dir), "--run", "w",
         "--domain", "code", "--base-model", "tiny", "--suite", "code", "--limit", "2",
         "--api", server.url, "--token", TOKEN, "--settle", str(SETTLE_S), "--poll", "0.2",
         *extra],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), env=os.environ.copy(),
    )  # fmt: skip


def _checkpoints(api: ApiClient, run: str = "w") -> list[dict]:
    try:
        return api.get_run(run)["checkpoints"]
    except ApiError as e:  # not created yet
        assert e.status == 404, e
        return []


def _wait(condition, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _staged(tiny_base: Path, root: Path, step: int, epoch: float | None) -> Path:
    ckpt = trainer_dir(root, step, epoch) if epoch else root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True, exist_ok=True)
    return write_rasa(ckpt, tiny_base, TARGET_MODULES, r=8, k=2, alpha=16, seed=step, std=0.1)


def test_checkpoints_appearing_one_by_one_are_each_registered_once(service, tiny_base, tmp_path):
    staging, run_dir = tmp_path / "staging", tmp_path / "run"
    run_dir.mkdir()
    first = _staged(tiny_base, staging, 10, 1.0)
    slow = _staged(tiny_base, staging, 20, 2.0)
    bare = _staged(tiny_base, staging, 30, None)  # no trainer_state.json
    api = ApiClient(service.url)
    log = tmp_path / "watch.log"
    watcher = _watch(service, run_dir, log, "--final-on-exit")
    try:
        shutil.copytree(first, run_dir / first.name)
        _wait(lambda: len(_checkpoints(api)) == 1, "checkpoint-10")

        # checkpoint-20 written slowly: each piece sooner than --settle, the whole longer
        target = run_dir / slow.name
        target.mkdir()
        for small in ("trainer_state.json", "adapter_config.json"):
            shutil.copy(slow / small, target / small)
        weights = (slow / "adapter_model.safetensors").read_bytes()
        pieces = 6
        with (target / "adapter_model.safetensors").open("wb") as out:
            for i in range(pieces):
                out.write(weights[i * len(weights) // pieces : (i + 1) * len(weights) // pieces])
                out.flush()
                time.sleep(SETTLE_S / 4)
                assert len(_checkpoints(api)) == 1, "a half-written checkpoint was registered"
        _wait(lambda: len(_checkpoints(api)) == 2, "checkpoint-20")

        shutil.copytree(bare, run_dir / bare.name)
        _wait(lambda: len(_checkpoints(api)) == 3, "checkpoint-30")
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(120) == 0, log.read_text()
    got = [(c["epoch"], c["step"], Path(c["uri"]).name, c["sha256"], c["final"])
           for c in _checkpoints(api)]  # fmt: skip
    assert got == [
        (1.0, 10, "checkpoint-10", checkpoint_facts(first)["sha256"], False),
        (2.0, 20, "checkpoint-20", checkpoint_facts(slow)["sha256"], False),
        # no trainer_state.json: the step from the name, the epoch from its place (third)
        (3.0, 30, "checkpoint-30", checkpoint_facts(bare)["sha256"], True),
    ]
    text = log.read_text()
    assert "checkpoint-30 has no trainer_state.json" in text and "epoch 3" in text
    run = api.get_run("w")
    assert (run["method"], run["r"], run["k"]) == ("rasa", 8, 2)  # from the adapter config
    jobs = api.list_jobs(run="w")
    assert len(jobs) == 3 and {j["suite"] for j in jobs} == {"code"}

    # a callback's leftover spool entry in the run directory (another run, marked final)
    Spool(run_dir).write(
        Entry(run="w-callback", path=str((run_dir / first.name).resolve()), final=True,
              new_run={"method": "rasa", "domain": "code", "base_model": "tiny"})
    )  # fmt: skip
    again = _watch(service, run_dir, log, "--once")
    assert again.wait(120) == 0, log.read_text()
    assert [c["sha256"] for c in _checkpoints(api)] == [g[3] for g in got]  # nothing new
    assert len(api.list_jobs(run="w")) == 3
    replayed = _checkpoints(api, "w-callback")
    assert [(c["step"], c["final"]) for c in replayed] == [(10, True)]
    assert not list((run_dir / ".evalsuite-spool").glob("*.json"))
