"""Scores into MLflow and Weights & Biases, read back with the libraries' own readers.

A real ``evalsuite worker --track mlflow --track wandb`` process finishes two jobs (a LoRA's
epochs 1 and 2 on the tiny local model, transformers engine, suite ``tiny``) against the API
under uvicorn on SQLite. Then:

* MLflow: ``MlflowClient`` (MLflow's own client, on the SQLite store the worker wrote) reads
  each metric's history: one point per checkpoint, at the step transformers' trainer_state.json
  gives, with the value the service stored;
* W&B (offline, no network): the run files are read with W&B's own reader, ``wandb leet
  inspect --json`` (the records of the ``.wandb`` transaction log), not the in-process history;
* ``evalsuite export`` logs the same from the service into a fresh MLflow store, and a second
  export adds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import TOKEN, served

from evalsuite.client import ApiClient
from evalsuite.testing.checkpoints import EXAMPLE_TASKS, write_example_runs
from evalsuite.worker.submit import RunFields, submit_checkpoint

pytestmark = pytest.mark.slow
RUN = "tiny-lora"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    yield from served("sqlite", tmp_path_factory.mktemp("trackers"))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evalsuite.cli", *args],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip


def _tracker_env(root: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_SILENT": "true",
    }


@pytest.fixture(scope="module")
def worked(service, tiny_base, tmp_path_factory) -> dict:
    """Both epochs registered and evaluated by a tracking worker; what the test compares."""
    root = tmp_path_factory.mktemp("tracked")
    checkpoints = write_example_runs(root, tiny_base, methods=("lora",), epochs=2)["lora"]
    client = ApiClient(service.url, token=TOKEN)
    new_run = RunFields(method="lora", domain="code", base_model="tiny",
                        base_model_path=str(tiny_base))  # fmt: skip
    ids = [
        submit_checkpoint(client, RUN, c, suites=["tiny"], options={"limit": 4}, new_run=new_run)[
            "checkpoint"
        ]["id"]
        for c in checkpoints
    ]
    env = _tracker_env(root)
    done = _cli(
        "worker", "--api", service.url, "--token", TOKEN, "--engine", "hf", "--task-dir",
        str(EXAMPLE_TASKS), "--work-dir", str(root / "jobs"), "--once", "--poll", "0.5",
        "--track", "mlflow", "--track", "wandb", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 job(s) finished" in done.stdout + done.stderr
    # independent of evalsuite: the step transformers' trainer_state.json records, and the
    # values the service stored for each checkpoint
    steps = [json.loads((c / "trainer_state.json").read_text())["global_step"] for c in checkpoints]
    stored = {}
    for step, cid in zip(steps, ids, strict=True):
        for s in client.get_checkpoint(cid)["scores"]:
            stored.setdefault((s["task"], s["metric"]), []).append((step, s["value"]))
    assert len(stored) >= 3 and all(len(points) == 2 for points in stored.values())
    return {"root": root, "env": env, "steps": steps, "stored": stored}


def _mlflow_histories(uri: str) -> tuple[dict, dict[str, list[tuple[int, float]]]]:
    """(params, metric -> [(step, value)]) of the one MLflow run named RUN."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("evalsuite")
    runs = [r for r in client.search_runs([experiment.experiment_id])
            if r.info.run_name == RUN]  # fmt: skip
    assert len(runs) == 1
    run = runs[0]
    histories = {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }
    return run.data.params, histories


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """The same steps, and values equal up to float rounding."""
    return [s for s, _ in got] == [s for s, _ in want] and [v for _, v in got] == pytest.approx(
        [v for _, v in want]
    )


def _mlflow_name(task: str, metric: str) -> str:
    return f"{task}/{metric}".replace("@", "_at_")


def test_mlflow_reads_back_the_workers_metrics_at_the_checkpoints_steps(worked):
    params, histories = _mlflow_histories(worked["env"]["MLFLOW_TRACKING_URI"])
    assert params["method"] == "lora" and params["domain"] == "code"
    assert params["base_model"] == "tiny" and params["r"] == "8"
    for (task, metric), points in worked["stored"].items():
        assert _same(histories[_mlflow_name(task, metric)], points), (task, metric)
    assert histories["epoch"] == [(worked["steps"][0], 1.0), (worked["steps"][1], 2.0)]


def _wandb_records(wandb_dir: Path) -> list[dict]:
    """Every record of every offline run there, through W&B's own reader of its run files."""
    records = []
    for run_dir in sorted((wandb_dir / "wandb").glob("offline-run-*")):
        out = subprocess.run(
            [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json",
             str(run_dir)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        records += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return records


def test_wandb_offline_run_files_hold_the_metrics_and_a_table_per_epoch(worked):
    records = _wandb_records(worked["root"])
    run_ids = {r["run"]["run_id"] for r in records if r.get("type") == "run"}
    assert len(run_ids) == 1  # both jobs resumed the same W&B run
    by_step = {}
    for r in records:
        if r.get("type") == "history":
            item = r["history"]["item"]
            by_step[item["train/global_step"]] = item
    assert sorted(by_step) == worked["steps"]
    for (task, metric), points in worked["stored"].items():
        for step, value in points:
            assert by_step[step][f"evalsuite/{task}/{metric}"] == pytest.approx(value)
    n_metrics = sum(1 for _ in worked["stored"])
    for epoch, step in zip((1, 2), worked["steps"], strict=True):
        assert by_step[step]["evalsuite/epoch"] == epoch
        assert by_step[step][f"evalsuite/epoch_{epoch}/tiny._type"] == "table-file"
        assert by_step[step][f"evalsuite/epoch_{epoch}/tiny.nrows"] == n_metrics


def test_export_logs_the_stored_scores_once(service, worked, tmp_path):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'exported.db'}"}
    args = ("export", "--run", RUN, "--to", "mlflow", "--api", service.url)
    first = _cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "2 of 2 scored checkpoint(s) logged to mlflow" in first.stderr
    _, histories = _mlflow_histories(env["MLFLOW_TRACKING_URI"])
    for (task, metric), points in worked["stored"].items():
        assert _same(histories[_mlflow_name(task, metric)], points), (task, metric)
    again = _cli(*args, env=env)
    assert "0 of 2 scored checkpoint(s) logged to mlflow" in again.stderr
    assert _mlflow_histories(env["MLFLOW_TRACKING_URI"])[1] == histories


def test_a_tracker_without_its_library_names_the_install(monkeypatch):
    from evalsuite.integrations.trackers import TrackerMissing, make_tracker

    monkeypatch.setitem(sys.modules, "mlflow", None)  # Python's own "not installed"
    monkeypatch.delitem(sys.modules, "evalsuite.integrations.mlflow_tracker", raising=False)
    with pytest.raises(TrackerMissing) as e:
        make_tracker("mlflow")
    assert "pip install 'evalsuite[trackers]'" in str(e.value) and "mlflow-skinny" in str(e.value)
