"""examples/finetune_lora.py as a user runs it (a real process, a real PEFT LoRA fine-tune
through evalsuite.training) against the API under uvicorn on SQLite; on the tiny local
model with a few examples (``--base``) so it is cheap: the real model is the default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import TOKEN, served

from evalsuite.client import ApiClient

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finetune_lora.py"


@pytest.fixture
def service(tmp_path):
    yield from served("sqlite", tmp_path)


def test_the_example_registers_every_epoch_and_marks_the_last_final(service, tiny_base, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--run", "example", "--base", str(tiny_base),
         "--out", str(out), "--examples", "8", "--epochs", "2", "--suite", "code",
         "--limit", "2", "--api", service.url, "--token", TOKEN],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    states = [
        json.loads((c / "trainer_state.json").read_text())
        for c in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    ]
    api = ApiClient(service.url)
    got = [(c["epoch"], c["step"], c["final"]) for c in api.get_run("example")["checkpoints"]]
    assert got == [(s["epoch"], s["global_step"], s["epoch"] == 2.0) for s in states]
    assert [s["epoch"] for s in states] == [1.0, 2.0]
    run = api.get_run("example")
    assert (run["method"], run["r"], run["base_model_path"]) == ("lora", 8, str(tiny_base))
    jobs = api.list_jobs(run="example")
    assert len(jobs) == 2 and all(j["suite"] == "code" for j in jobs)
    printed = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert len(printed) == 2 and "0 still to send" in done.stderr
