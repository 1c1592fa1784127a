"""A real results API on a free port over a temp SQLite file, seeded through HTTP with known
numbers: what the dashboard's tests and benchmark look at.

Seeding goes the way production data does: ``POST /v1/runs``, ``POST .../checkpoints`` (which
queues jobs), then a fake worker claims each job and completes it with a ``results.json``
object and samples rows in the runner's format (or fails it, for the queue page).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from evalsuite.settings import environment_for
from evalsuite.testing.results_json import results_json

TOKEN = "dashboard-test-token"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail early with the server's output if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(
                f"server exited with {process.returncode} before {url} answered:\n{out}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def live_api(db_path: Path, max_attempts: int = 1) -> Iterator[str]:
    """The real API (uvicorn, ``create_app`` factory) over a fresh SQLite file; yields its URL.

    ``max_attempts=1`` makes one failure final, so a seeded failure shows as FAILED.
    """
    from evalsuite.store.migrate import upgrade

    url = f"sqlite:///{db_path}"
    upgrade(url)
    port = free_port()
    env = {
        **os.environ,
        **environment_for(database_url=url, api_token=TOKEN, max_attempts=max_attempts),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "evalsuite.api.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/v1/health", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class RunSpec:
    """One training run: per epoch the learning metrics (fractions) and the forgetting score."""

    name: str
    method: str
    r: int | None
    domain: str
    base_model: str
    epochs: list[dict[str, float]]
    forgetting: list[float] = field(default_factory=list)
    trainable_params: int | None = None
    extra_params: int | None = None
    train_time_s: float | None = None
    fail: tuple[int, str] | None = None  # (epoch, suite) whose job fails with FAIL_REASON
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


FAIL_REASON = "CUDA out of memory while loading the base (tried 80.0 GiB); lower --max-model-len"
LEARNING_TASK = {"code": "humaneval_plus", "math": "math"}


@contextlib.contextmanager
def live_dashboard(api_url: str) -> Iterator[str]:
    """``evalsuite dashboard`` on a free port, reading ``api_url``; yields the page URL."""
    import signal

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "evalsuite.cli", "dashboard", "--api", api_url,
         "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # streamlit's own children go down with it
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", server)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def _outcomes(spec: RunSpec) -> dict[tuple[float, str], tuple[dict, dict] | str]:
    """(epoch, suite) -> (results, samples) to complete with, or the reason to fail with."""
    out: dict[tuple[float, str], tuple[dict, dict] | str] = {}
    learning = LEARNING_TASK[spec.domain]
    last = len(spec.epochs)
    for e, metrics in enumerate(spec.epochs, start=1):
        samples = spec.samples if e == last else {}
        out[(float(e), spec.domain)] = (results_json({learning: metrics}), samples)
        if spec.forgetting:
            score = spec.forgetting[e - 1]
            parts = {"hellaswag": {"acc_norm": score}, "winogrande": {"acc": score}}
            out[(float(e), "forgetting")] = (results_json(parts, {"forgetting_score": score}), {})
    if spec.fail is not None:
        out[(float(spec.fail[0]), spec.fail[1])] = FAIL_REASON
    return out


def seed(base_url: str, specs: list[RunSpec], worker_id: str = "seed-worker") -> None:
    """Register every run and checkpoint, then claim and finish every queued job."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    plan: dict[tuple[str, float, str], tuple[dict, dict] | str] = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        for spec in specs:
            run = {
                "name": spec.name,
                "method": spec.method,
                "r": spec.r,
                "k": 2 if spec.method == "rasa" else None,
                "alpha": 16,
                "domain": spec.domain,
                "base_model": spec.base_model,
                "base_model_path": f"/models/{spec.base_model}",
                "trainable_params": spec.trainable_params,
                "extra_params": spec.extra_params,
                "train_time_s": spec.train_time_s,
                "metadata": {},
            }
            http.post("/v1/runs", json=run).raise_for_status()
            suites = [spec.domain] + (["forgetting"] if spec.forgetting else [])
            for e in range(1, len(spec.epochs) + 1):
                checkpoint = {
                    "epoch": e,
                    "step": 100 * e,
                    "uri": f"/checkpoints/{spec.name}/checkpoint-{100 * e}",
                    "sha256": f"{spec.name}-{e}".encode().hex().ljust(64, "0")[:64],
                    "final": e == len(spec.epochs),
                    "suites": suites,
                }
                http.post(f"/v1/runs/{spec.name}/checkpoints", json=checkpoint).raise_for_status()
            for (epoch, suite), outcome in _outcomes(spec).items():
                plan[(spec.name, epoch, suite)] = outcome
        _work_queue(http, plan, worker_id)


def _work_queue(http: httpx.Client, plan: dict, worker_id: str) -> None:
    while True:
        answer = http.post("/v1/jobs/claim", json={"worker_id": worker_id, "lease_s": 600})
        answer.raise_for_status()
        if answer.status_code == 204:
            return
        job = answer.json()
        outcome = plan[(job["run"], float(job["epoch"]), job["suite"])]
        if isinstance(outcome, str):
            body = {"worker_id": worker_id, "error": outcome}
            http.post(f"/v1/jobs/{job['id']}/fail", json=body).raise_for_status()
        else:
            results, samples = outcome
            body = {"worker_id": worker_id, "results": results, "samples": samples}
            http.post(f"/v1/jobs/{job['id']}/complete", json=body).raise_for_status()


LLAMA, MISTRAL = "Llama-3.1-8B", "Mistral-0.3-7B"
_CODE = {"prompt_sha256": "prompt-humaneval_plus", "sample_index": 0}
_MATH = {"prompt_sha256": "prompt-math", "sample_index": 0}
CODE_SAMPLES = [
    {"doc_id": "HumanEval/0", **_CODE, "verdict": True, "completion": "return True",
     "details": {"status": "pass", "failed_split": None, "failed_input": None}},
    {"doc_id": "HumanEval/2", **_CODE, "verdict": False, "completion": "return 0",
     "details": {"status": "fail", "failed_split": "plus", "failed_input": "[3.5, 1e-09]"}},
    {"doc_id": "HumanEval/3", **_CODE, "verdict": False, "completion": "while 1: pass",
     "details": {"status": "timeout", "failed_split": "base", "failed_input": "[[1, 2, -4]]"}},
]  # fmt: skip
MATH_SAMPLES = [
    {"doc_id": "algebra/1", **_MATH, "verdict": False, "completion": "so 1/2",
     "details": {"extracted": "1/2", "gold": "0.5", "paper": False, "robust": True,
                 "status": "ok", "subject": "Algebra", "level": 2}},
    {"doc_id": "geometry/2", **_MATH, "verdict": True, "completion": "\\boxed{3}",
     "details": {"extracted": "3", "gold": "3", "paper": True, "robust": True,
                 "status": "ok", "subject": "Geometry", "level": 1}},
]  # fmt: skip


def _code(p1: list[float], p10: list[float]) -> list[dict[str, float]]:
    return [{"pass@1": a, "pass@10": b} for a, b in zip(p1, p10, strict=True)]


def known_runs() -> list[RunSpec]:
    """The small data set the dashboard tests check numbers against (three epochs per run,
    epoch 3 final; no ties within a column, so bold and italic are unambiguous)."""
    h = 3600.0
    return [
        RunSpec("llama-lora-r8", "lora", 8, "code", LLAMA,
                _code([0.500, 0.561, 0.530], [0.650, 0.712, 0.685]),
                forgetting=[0.620, 0.600, 0.580], trainable_params=21_000_000,
                train_time_s=9.6 * h),
        RunSpec("llama-rasa-r8", "rasa", 8, "code", LLAMA,
                _code([0.550, 0.579, 0.569], [0.700, 0.726, 0.696]),
                forgetting=[0.630, 0.625, 0.620], trainable_params=21_000_000,
                train_time_s=11.2 * h, samples={"humaneval_plus": CODE_SAMPLES}),
        RunSpec("llama-lora-r32", "lora", 32, "code", LLAMA,
                _code([0.520, 0.570, 0.565], [0.660, 0.698, 0.692]),
                trainable_params=83_900_000, train_time_s=10.0 * h),
        RunSpec("llama-rasa-r32", "rasa", 32, "code", LLAMA,
                _code([0.580, 0.595, 0.562], [0.700, 0.725, 0.714]),
                trainable_params=83_900_000, train_time_s=11.5 * h),
        RunSpec("llama-vera-r1024", "vera", 1024, "code", LLAMA,
                _code([0.450, 0.488, 0.480], [0.600, 0.665, 0.642]),
                trainable_params=1_600_000, train_time_s=11.3 * h),
        RunSpec("mistral-lora-r8", "lora", 8, "code", MISTRAL,
                _code([0.400, 0.426, 0.397], [0.550, 0.577, 0.548]),
                trainable_params=21_000_000, train_time_s=10.7 * h),
        RunSpec("mistral-rasa-r8", "rasa", 8, "code", MISTRAL,
                _code([0.480, 0.500, 0.490], [0.630, 0.660, 0.642]),
                forgetting=[0.500, 0.490, 0.480], trainable_params=21_000_000,
                train_time_s=12.1 * h, fail=(1, "forgetting")),
        RunSpec("llama-fft-math", "fft", None, "math", LLAMA,
                [{"acc": 0.330}, {"acc": 0.355}, {"acc": 0.346}], trainable_params=7_500_000_000),
        RunSpec("llama-rasa-r8-math", "rasa", 8, "math", LLAMA,
                [{"acc": 0.290, "acc_robust": 0.300}, {"acc": 0.303, "acc_robust": 0.310},
                 {"acc": 0.291, "acc_robust": 0.295}], trainable_params=21_000_000,
                train_time_s=23.8 * h, samples={"math": MATH_SAMPLES}),
    ]  # fmt: skip


def bulk_runs(n: int, epochs: int = 2) -> list[RunSpec]:
    """``n`` code runs over 2 base models, 3 ranks and 4 methods (many runs per table cell,
    as a busy group's database has), values spread deterministically."""
    methods, ranks, bases = ["lora", "rslora", "mora", "rasa"], [8, 16, 32], [LLAMA, MISTRAL]
    specs = []
    for i in range(n):
        v = 0.30 + (i * 37 % 1000) / 4000
        specs.append(
            RunSpec(f"bulk-{i:05d}", methods[i % 4], ranks[i // 4 % 3], "code", bases[i // 12 % 2],
                    _code([v - 0.01 * e for e in range(epochs)], [v + 0.1] * epochs),
                    trainable_params=21_000_000, train_time_s=36_000.0 + i)
        )  # fmt: skip
    return specs
