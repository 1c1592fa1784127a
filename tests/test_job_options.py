"""A job's evaluation options (evalsuite/evaluation/options.py): checked when the checkpoint
is registered (422 naming the option and what it accepts) and again by the worker, which
applies them field by field; a run without a base model path fails its job with the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import TOKEN

from evalsuite.api.app import create_app
from evalsuite.evaluation.options import JobOptions
from evalsuite.evaluation.runner import EvalOptions
from evalsuite.settings import Settings
from evalsuite.store import migrate
from evalsuite.tokens import Grant
from evalsuite.worker.loop import JobOptionError, WorkerSettings, eval_options

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    with TestClient(create_app(Settings(database_url=url, grants=(Grant(secret=TOKEN),)))) as c:
        run = {"name": "r", "method": "lora", "r": 8, "domain": "code", "base_model": "A"}
        assert c.post("/v1/runs", json=run, headers=AUTH).status_code == 201
        yield c


def _register(client, options, sha256: str = "s"):
    body = {"epoch": 1, "uri": "/c", "sha256": sha256, "suites": ["code"], "options": options}
    return client.post("/v1/runs/r/checkpoints", json=body, headers=AUTH)


@pytest.mark.parametrize(
    "options,expected",
    [
        (
            {"limit": 5, "temperature_boost": 2},
            "body.options: Value error, unknown option(s) ['temperature_boost']; the options are "
            "limit, n_samples, max_new_tokens, seed, num_fewshot, materialize, dtype, engine",
        ),
        ({"limit": "5"}, "body.options.limit: Input should be a valid integer"),
        ({"n_samples": 2.0}, "body.options.n_samples: Input should be a valid integer"),
        ({"limit": 0}, "body.options.limit: Input should be greater than or equal to 1"),
        ({"engine": "tensorrt"}, "body.options.engine: Input should be 'auto', 'vllm' or 'hf'"),
        ({"materialize": "gguf"}, "body.options.materialize: Input should be 'merged' or 'lora'"),
        ({"dtype": "int8"}, "body.options.dtype: Input should be 'float32', 'fp32', 'bfloat16'"),
    ],
)
def test_registration_refuses_bad_options_naming_them(client, options, expected):
    answer = _register(client, options)
    assert answer.status_code == 422, answer.text
    assert expected in answer.json()["detail"]
    assert client.get("/v1/jobs").json() == []  # nothing was queued


def test_only_the_given_options_reach_the_job(client):
    assert _register(client, {"limit": 5, "engine": "hf", "seed": None}).status_code == 201
    claim = client.post("/v1/jobs/claim", json={"worker_id": "w"}, headers=AUTH).json()
    assert claim["options"] == {"limit": 5, "engine": "hf"}


def test_every_option_is_an_eval_option():
    assert set(JobOptions.model_fields) <= {f.name for f in dataclasses.fields(EvalOptions)}


def _claim(**changes) -> dict:
    claim = {
        "id": 7,
        "run": "rasa-r8",
        "suite": "code",
        "checkpoint_uri": "/ckpt/7",
        "base_model": "tiny",
        "base_model_path": "/models/tiny",
        "options": {},
    }
    return {**claim, **changes}


SETTINGS = WorkerSettings(work_dir=Path("/work"), engine="vllm", dtype="bfloat16")


def test_the_worker_applies_the_options_over_its_settings():
    opts = eval_options(_claim(options={"limit": 3, "engine": "hf", "num_fewshot": 0}), SETTINGS)
    assert (opts.limit, opts.engine, opts.num_fewshot) == (3, "hf", 0)
    assert opts.dtype == "bfloat16" and opts.materialize == "merged"  # the worker's own
    assert opts.base == Path("/models/tiny") and opts.out == Path("/work/job-7")
    plain = eval_options(_claim(options=None), SETTINGS)
    assert (plain.limit, plain.engine) == (None, "vllm")


@pytest.mark.parametrize(
    "options,named",
    [
        ({"temperature_boost": 2}, "unknown option(s) ['temperature_boost']"),
        ({"limit": "3"}, "limit: Input should be a valid integer"),
        ({"engine": "tensorrt"}, "engine: Input should be 'auto', 'vllm' or 'hf'"),
        (["limit"], "Input should be a valid dictionary"),
    ],
)
def test_the_worker_refuses_options_it_cannot_use(options, named):
    with pytest.raises(JobOptionError) as refused:
        eval_options(_claim(options=options), SETTINGS)
    message = str(refused.value)
    assert "job 7" in message and named in message and "upgrade the worker" in message
    assert "limit, n_samples, max_new_tokens" in message


@pytest.mark.parametrize("path", [None, ""])
def test_a_run_without_a_base_model_path_fails_with_the_fix(path):
    with pytest.raises(JobOptionError) as refused:
        eval_options(_claim(base_model_path=path), SETTINGS)
    message = str(refused.value)
    assert "'rasa-r8' has no base_model_path" in message and "'tiny'" in message
    assert "evalsuite submit --base-model-path" in message
    assert "POST /v1/jobs/7/retry" in message
