"""The queue worker against the service on PostgreSQL (tests/test_worker.py runs on SQLite):
one real ``evalsuite worker --once`` process completes one job, and the scores and samples
the service stores equal an evaluation of the same checkpoint by the runner called directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_support import served
from test_worker import _scores, _submit, _worker

from evalsuite.client import ApiClient
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.testing.checkpoints import EXAMPLE_TASKS, write_example_runs
from evalsuite.worker.submit import checkpoint_facts

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path):
    yield from served("postgresql", tmp_path)


@pytest.fixture
def checkpoint(tiny_base, tmp_path) -> Path:
    """The last of two epochs of an example RaSA run."""
    runs = write_example_runs(tmp_path / "runs", tiny_base, methods=("rasa",), epochs=2)
    return runs["rasa"][1]


def test_one_job_on_postgresql_is_scored_like_a_direct_evaluation(
    service, checkpoint, tiny_base, tmp_path
):
    assert service.database_url.startswith("postgresql")
    answer = _submit(service, checkpoint, "rasa-r8", tiny_base, "--final")
    assert [j["suite"] for j in answer["jobs"]] == ["tiny"]
    assert answer["checkpoint"]["sha256"] == checkpoint_facts(checkpoint)["sha256"]
    client = ApiClient(service.url)
    assert client.health()["database"] == "postgresql"

    worker = _worker(service, tmp_path / "jobs", "--once")
    out, _ = worker.communicate(timeout=600)
    assert worker.returncode == 0, out
    assert "1 job(s) finished" in out
    job = client.get_job(answer["jobs"][0]["id"])
    assert (job["status"], job["attempts"], job["error"]) == ("FINISHED", 1, None), job

    direct = evaluate(
        EvalOptions(
            base=tiny_base, adapter=checkpoint, out=tmp_path / "direct", suite="tiny",
            engine="hf", task_dirs=[EXAMPLE_TASKS], progress=False,
        )
    )  # fmt: skip
    expected = {
        (task, metric): m["value"]
        for task, entry in direct["tasks"].items()
        for metric, m in entry["metrics"].items()
    }
    assert set(expected) >= {("tiny_gen", "exact_match"), ("tiny_mc", "acc")}
    assert _scores(client, answer["checkpoint"]["id"]) == pytest.approx(expected)
    for task in direct["tasks"]:
        stored = client.samples(answer["checkpoint"]["id"], task=task, limit=1000)
        rows = [
            json.loads(line)
            for line in (tmp_path / "direct" / f"samples_{task}.jsonl").read_text().splitlines()
        ]
        assert stored["total"] == len(rows) == len(stored["items"])
        got = {(s["doc_id"], s["sample_index"]): s["correct"] for s in stored["items"]}
        assert got == {(r["doc_id"], r["sample_index"]): r["verdict"] for r in rows}
    board = client.leaderboard("tiny_mc", "acc")
    assert [(r["run"], r["n_epochs"]) for r in board] == [("rasa-r8", 1)]
    assert board[0]["best"] == pytest.approx(expected[("tiny_mc", "acc")])
