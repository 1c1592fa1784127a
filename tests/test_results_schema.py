"""The results directory's schema (evalsuite/results_schema.py): it accepts what the runner
writes and gives it back unchanged, it stays in step with the task and engine records it
mirrors and with docs/results.md, the API publishes it and answers a malformed upload with a
422 that names the field, and the gate and the worker refuse a file that does not match."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_support import TOKEN, real_results, real_samples, results_with, sample_row

from evalsuite.api.app import create_app
from evalsuite.engines.base import EngineInfo
from evalsuite.gate.evidence import GateInputError
from evalsuite.gate.results_dir import ResultsDirSource
from evalsuite.results_schema import (
    MODELS,
    DataConfig,
    EngineRecord,
    LmEvalConfig,
    ResultsFile,
    SampleRow,
    SamplingConfig,
    TaskConfig,
)
from evalsuite.settings import Settings
from evalsuite.store import migrate
from evalsuite.tasks.registry import TaskRegistry
from evalsuite.tasks.spec import _LM_EVAL_KEYS, DataSource, Sampling
from evalsuite.testing.checkpoints import EXAMPLE_TASKS
from evalsuite.testing.results_dirs import code_task, math_task, write_results_dir
from evalsuite.tokens import Grant
from evalsuite.worker.job import collect

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_runners_files_are_accepted_and_given_back_unchanged():
    raw = real_results()
    assert ResultsFile.model_validate(raw).model_dump(mode="json", exclude_unset=True) == raw
    for rows in real_samples().values():
        for row in rows:
            assert SampleRow.model_validate(row).model_dump(mode="json", exclude_unset=True) == row


def test_numbers_keep_their_json_type_so_the_config_hash_does_not_move():
    raw = real_results()
    raw["tasks"]["tiny_gen"]["config"]["sampling"]["temperature"] = 0
    dumped = ResultsFile.model_validate(raw).model_dump(mode="json", exclude_unset=True)
    assert json.dumps(dumped["tasks"]["tiny_gen"]["config"]["sampling"]["temperature"]) == "0"


def test_the_config_records_mirror_the_task_spec():
    """A field added to what TaskSpec.config() records (or to its data or sampling) must be
    added to the schema too: the runner's own results would be refused otherwise."""
    added_by_runner = {"data_sha256", "data_origin", "prompt_sha256", "limit"}
    specs = list(TaskRegistry([EXAMPLE_TASKS]).tasks.values())
    assert {s.kind for s in specs} == {"generate", "multiple_choice", "lm_eval"}
    for spec in specs:
        config = spec.config()
        assert set(TaskConfig.model_fields) == set(config) | added_by_runner, spec.name
        runner_fields = {"data_sha256": "d", "data_origin": "o", "prompt_sha256": "p"}
        TaskConfig.model_validate({**config, **runner_fields})
    assert set(DataConfig.model_fields) == {f.name for f in dataclasses.fields(DataSource)}
    assert set(SamplingConfig.model_fields) == {f.name for f in dataclasses.fields(Sampling)}
    assert set(LmEvalConfig.model_fields) == _LM_EVAL_KEYS
    assert {f.name for f in dataclasses.fields(EngineInfo)} <= set(EngineRecord.model_fields)


def _documented_fields(text: str, heading: str) -> list[str]:
    section = re.search(rf"^### {heading}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert section, f"docs/results.md has no '### {heading}' section"
    return re.findall(r"^\| `([^`]+)` \|", section.group(1), re.M)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_docs_name_every_field_of_every_model(model):
    text = (ROOT / "docs" / "results.md").read_text()
    assert _documented_fields(text, model.__name__) == list(model.model_fields)


def test_the_api_docs_link_the_results_schema():
    assert "(results.md)" in (ROOT / "docs" / "api.md").read_text()


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    with TestClient(create_app(Settings(database_url=url, grants=(Grant(secret=TOKEN),)))) as c:
        yield c


def test_the_openapi_document_publishes_the_schema(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for model in MODELS:
        assert model.__name__ in schemas
    complete = schemas["CompleteIn"]["properties"]
    assert complete["results"]["$ref"] == "#/components/schemas/ResultsFile"
    assert set(schemas["ResultsFile"]["properties"]) == set(ResultsFile.model_fields)
    assert schemas["ResultsFile"]["additionalProperties"] is False


def _claimed(client) -> int:
    run = {"name": "r", "method": "lora", "r": 8, "domain": "code", "base_model": "A"}
    assert client.post("/v1/runs", json=run, headers=AUTH).status_code == 201
    checkpoint = {"epoch": 1, "uri": "/c", "sha256": "s", "suites": ["code"]}
    assert client.post("/v1/runs/r/checkpoints", json=checkpoint, headers=AUTH).status_code == 201
    job = client.post("/v1/jobs/claim", json={"worker_id": "w"}, headers=AUTH).json()
    return job["id"]


def _complete(client, job_id: int, results, samples=None):
    body = {"worker_id": "w", "results": results, "samples": samples or {}}
    # json.dumps writes NaN, as Python's json (and the runner) do
    return client.post(
        f"/v1/jobs/{job_id}/complete",
        content=json.dumps(body),
        headers={**AUTH, "Content-Type": "application/json"},
    )


def test_a_malformed_upload_is_a_422_naming_the_field_and_nothing_is_stored(client):
    job_id = _claimed(client)
    results = results_with({"humaneval_plus": {"pass@1": 0.5}})
    wrong_value = copy.deepcopy(results)
    wrong_value["tasks"]["humaneval_plus"]["metrics"]["pass@1"]["value"] = "high"
    missing = copy.deepcopy(results)
    del missing["model"]["engine"]
    unknown = {**results, "temperature": 0.2}
    bad_row = {k: v for k, v in sample_row("HumanEval/0").items() if k != "prompt_sha256"}
    cases = [
        (wrong_value, {}, "body.results.tasks.humaneval_plus.metrics.pass@1.value: "),
        (missing, {}, "body.results.model.engine: Field required"),
        (unknown, {}, "body.results.temperature: Extra inputs are not permitted"),
        (results, {"humaneval_plus": [bad_row]}, "body.samples.humaneval_plus.0.prompt_sha256"),
    ]
    for body, samples, expected in cases:
        answer = _complete(client, job_id, body, samples)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("invalid request: "), detail
        assert expected in detail
    nan = copy.deepcopy(results)
    nan["tasks"]["humaneval_plus"]["metrics"]["pass@1"]["value"] = float("nan")
    answer = _complete(client, job_id, nan)
    assert answer.status_code == 422
    assert "results.tasks.humaneval_plus.metrics.pass@1.value is nan" in answer.json()["detail"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "RUNNING"
    row = sample_row("HumanEval/0", scorer_extra={"kept": True})
    assert _complete(client, job_id, results, {"humaneval_plus": [row]}).status_code == 200
    stored = client.get("/v1/checkpoints/1/samples").json()["items"]
    assert [s["record"] for s in stored] == [row]


def test_the_gate_names_the_file_and_the_field(tmp_path):
    out = write_results_dir(tmp_path / "a", [math_task([True, False])])
    results = json.loads((out / "results.json").read_text())
    results["tasks"]["math"]["n_docs"] = -1
    (out / "results.json").write_text(json.dumps(results))
    with pytest.raises(GateInputError, match=r"a/results.json .*tasks\.math\.n_docs: Input should"):
        ResultsDirSource(out, "candidate")


def test_the_gate_refuses_a_samples_row_that_does_not_match(tmp_path):
    out = write_results_dir(tmp_path / "a", [code_task([[True], [False]])])
    rows = (out / "samples_humaneval_plus.jsonl").read_text().splitlines()
    rows[1] = json.dumps({**json.loads(rows[1]), "sample_index": "first"})
    (out / "samples_humaneval_plus.jsonl").write_text("\n".join(rows) + "\n")
    evidence = ResultsDirSource(out, "candidate").evidence("humaneval_plus", "pass@1")
    with pytest.raises(GateInputError, match=r"row 2 .*sample_index: Input should be"):
        evidence.load_rows()


def test_the_worker_does_not_upload_results_the_service_would_refuse(tmp_path):
    out = write_results_dir(tmp_path / "job", [math_task([True])])
    assert collect(out).ok
    results = json.loads((out / "results.json").read_text())
    results["model"]["materialization"] = "quantized"
    (out / "results.json").write_text(json.dumps(results))
    outcome = collect(out)
    assert not outcome.ok and "model.materialization: Input should be" in outcome.error
