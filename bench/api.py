"""Benchmark the results API: read latency on a full store and the sample-ingest rate.

The store is filled with ``--runs`` runs (1,000) x 8 checkpoints x 10 (task, metric) scores,
half code and half math runs, over 4 base models; scores go in with bulk inserts, since the
fill is set-up, not what is measured. Then, through HTTP against uvicorn in a child process:

* ingest: ``--samples`` sample rows (1M) reported by ``POST /v1/jobs/{id}/complete`` in
  payloads of 10,000 rows (the shape of one HumanEval+ job: 164 problems x 50 samples), one
  client, rows per second over the whole wall time of the requests;
* reads: ``--requests`` (200) each of ``/v1/leaderboard`` (a random (task, metric)),
  ``/v1/tables/{code|math}`` and ``/v1/curves`` (5 random runs), p50 and p95 in ms, measured
  after the samples are in.

Goals (printed as PASS/MISS, never asserted): p95 < 50 ms for each read, ingest >= 20,000
rows/s. Runs on SQLite and on the PostgreSQL at 127.0.0.1:5432 (database ``test``, a fresh
schema dropped at the end). The figures go to the "Results API" section of bench/RESULTS.md.

    python bench/api.py [--backends sqlite,postgresql] [--runs 1000] [--samples 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from results_md import replace_section
from sqlalchemy import insert

from evalsuite.client import ApiClient
from evalsuite.store import Database, migrate
from evalsuite.store.models import BaseModel, Checkpoint, Job, Run, Score
from evalsuite.testing.results_json import results_json

SECTION_TITLE = "## Results API (bench/api.py)"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN = "bench"
CODE = [("humaneval_plus", "pass@1"), ("humaneval_plus", "pass@10")]
MATH = [("math", "acc"), ("math", "acc_robust")]
SHARED = [
    ("forgetting", "forgetting_score"),
    ("hellaswag", "acc"),
    ("hellaswag", "acc_norm"),
    ("winogrande", "acc"),
    ("arc_challenge", "acc"),
    ("arc_challenge", "acc_norm"),
    ("mmlu", "acc"),
    ("gsm8k", "exact_match"),
]
METHODS = ["lora", "rslora", "dora", "vera", "mora", "rasa"]
SAMPLES_PER_JOB = 10_000


def _pg_schema() -> tuple[str, object]:
    import psycopg

    schema = f"evalsuite_bench_{uuid.uuid4().hex[:10]}"
    plain = PG_URL.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


def fill(url: str, n_runs: int) -> list[str]:
    """Runs, checkpoints, FINISHED jobs and scores by bulk insert; returns the run names."""
    rng = random.Random(0)
    db = Database(url)
    now = datetime.now(UTC)
    names = [f"run-{i:04d}" for i in range(n_runs)]
    with db.writing() as s:
        s.execute(insert(BaseModel), [{"name": f"base-{b}", "created_at": now} for b in range(4)])
        runs = []
        for i, name in enumerate(names):
            method = METHODS[i % len(METHODS)]
            runs.append(
                {"id": i + 1, "name": name, "method": method, "r": [8, 16, 32][i % 3],
                 "k": 2 if method == "rasa" else None, "domain": "code" if i % 2 else "math",
                 "base_model_id": i % 4 + 1, "trainable_params": 1000 * (i + 1),
                 "train_time_s": 3600.0, "meta": {}, "created_at": now}
            )  # fmt: skip
        s.execute(insert(Run), runs)
        checkpoints, jobs, scores = [], [], []
        for run in runs:
            pairs = (CODE if run["domain"] == "code" else MATH) + SHARED
            for epoch in range(1, 9):
                cid = len(checkpoints) + 1
                checkpoints.append(
                    {"id": cid, "run_id": run["id"], "epoch": float(epoch), "step": 100 * epoch,
                     "uri": f"/ckpt/{run['name']}/{epoch}", "sha256": f"{run['name']}-{epoch}",
                     "final": epoch == 8, "created_at": now}
                )  # fmt: skip
                jobs.append(
                    {"id": cid, "checkpoint_id": cid, "suite": "all", "status": "FINISHED",
                     "attempts": 1, "max_attempts": 3, "options": {}, "created_at": now}
                )  # fmt: skip
                for task, metric in pairs:
                    scores.append(
                        {"checkpoint_id": cid, "job_id": cid, "task": task, "metric": metric,
                         "value": rng.random(), "stderr": 0.01, "n": 164, "partial": False,
                         "config_hash": "0" * 64, "created_at": now}
                    )  # fmt: skip
        s.execute(insert(Checkpoint), checkpoints)
        s.execute(insert(Job), jobs)
        for start in range(0, len(scores), 20_000):
            s.execute(insert(Score), scores[start : start + 20_000])
    if db.backend == "postgresql":
        with db.engine.begin() as conn:
            # explicit ids above did not advance the sequences the API's inserts use
            for table in ("base_models", "runs", "checkpoints", "jobs"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    db.dispose()
    return names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "EVALSUITE_DATABASE_URL": url, "EVALSUITE_API_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "evalsuite.api.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


def ingest(api: ApiClient, total: int) -> float:
    """Rows per second through POST /v1/jobs/{id}/complete, 10,000 rows per request."""
    api.create_run(name="ingest", method="rasa", r=8, k=2, domain="code", base_model="base-0")
    results = results_json({"humaneval_plus": {"pass@1": 0.4}}, stderr=0.03)
    rows = [
        {"doc_id": f"HumanEval/{i // 50}", "prompt_sha256": "ab" * 32, "sample_index": i % 50,
         "verdict": i % 3 == 0, "completion": "    return sorted(set(l))\n" * 4,
         "details": {"passed": i % 3 == 0, "result": "failed: AssertionError"}}
        for i in range(SAMPLES_PER_JOB)
    ]  # fmt: skip
    spent = 0.0
    done = 0
    n_jobs = max(1, total // SAMPLES_PER_JOB)
    for j in range(n_jobs):
        api.register_checkpoint("ingest", epoch=j + 1, uri="/x", sha256=f"i{j}", suites=["code"])
        job = api.claim("bench", 600)
        t0 = time.perf_counter()
        api.complete(job["id"], "bench", results, {"humaneval_plus": rows})
        spent += time.perf_counter() - t0
        done += len(rows)
    return done / spent


def _task_metric(pair: tuple[str, str]) -> dict[str, str]:
    return {"task": pair[0], "metric": pair[1]}


def latencies(base: str, names: list[str], n: int) -> dict[str, tuple[float, float]]:
    rng = random.Random(1)
    pairs = CODE + MATH + SHARED
    makers = {
        "leaderboard": lambda: ("/v1/leaderboard", _task_metric(rng.choice(pairs))),
        "table": lambda: (f"/v1/tables/{rng.choice(['code', 'math'])}", {}),
        "curves": lambda: (
            "/v1/curves",
            {"runs": ",".join(rng.sample(names, 5)), "task": "forgetting",
             "metric": "forgetting_score"},
        ),
    }  # fmt: skip
    out = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for name, make in makers.items():
            for _ in range(5):  # warm-up: connection, statement caches
                path, params = make()
                http.get(path, params=params).raise_for_status()
            times = []
            for _ in range(n):
                path, params = make()
                t0 = time.perf_counter()
                http.get(path, params=params).raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = (statistics.median(times), times[int(0.95 * (len(times) - 1))])
    return out


def bench_backend(backend: str, args: argparse.Namespace) -> dict:
    drop = None
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            url, drop = _pg_schema()
        try:
            migrate.upgrade(url)
            t0 = time.perf_counter()
            names = fill(url, args.runs)
            fill_s = time.perf_counter() - t0
            proc, base = start_server(url)
            try:
                with ApiClient(base, token=TOKEN, timeout=300) as api:
                    rate = ingest(api, args.samples)
                reads = latencies(base, names, args.requests)
            finally:
                proc.terminate()
                proc.wait(30)
        finally:
            if drop:
                drop()
    return {"backend": backend, "fill_s": fill_s, "ingest": rate, "reads": reads}


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        SECTION_TITLE,
        "",
        f"Store: {args.runs:,} runs x 8 checkpoints x 10 metrics "
        f"({args.runs * 80:,} scores), {args.samples:,} sample rows ingested through HTTP in "
        f"requests of {SAMPLES_PER_JOB:,}; {args.requests} requests per read, one client, "
        "uvicorn with one worker on the same machine. Goals: p95 < 50 ms, ingest >= 20,000 rows/s.",
        "",
        "| backend | leaderboard p50 / p95 ms | table p50 / p95 ms | curves p50 / p95 ms "
        "| ingest rows/s | goals |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        reads = r["reads"]
        ok = all(p95 < 50 for _, p95 in reads.values()) and r["ingest"] >= 20_000
        cells = " | ".join(f"{reads[k][0]:.1f} / {reads[k][1]:.1f}" for k in reads)
        lines.append(
            f"| {r['backend']} | {cells} | {r['ingest']:,.0f} | {'PASS' if ok else 'MISS'} |"
        )
    lines.append("")
    lines.append(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = p.parse_args()
    results = []
    for backend in args.backends.split(","):
        r = bench_backend(backend, args)
        results.append(r)
        print(
            f"{backend}: fill {r['fill_s']:.1f} s, ingest {r['ingest']:,.0f} rows/s "
            f"({r['ingest'] / 20_000:.2f}x goal), "
            + ", ".join(
                f"{k} p50 {v[0]:.1f} ms p95 {v[1]:.1f} ms ({50 / v[1]:.1f}x under goal)"
                for k, v in r["reads"].items()
            ),
            flush=True,
        )
    text = report(results, args)
    print(text)
    if not args.no_write:
        replace_section(SECTION_TITLE, text)


if __name__ == "__main__":
    main()
