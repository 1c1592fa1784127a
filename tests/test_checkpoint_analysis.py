"""The adapter analysis stored with each checkpoint (issue 20): the runner's summary equals
``evalsuite adapter analyze`` run directly on the checkpoint, kinds that are not low-rank and
failures are notes that never fail the evaluation, and the service stores it with the
checkpoint (real uvicorn; SQLite and PostgreSQL), across the 0002 migration too."""

from __future__ import annotations

import json
import shutil

import pytest
from service_support import BACKENDS, TOKEN, make_database, served
from sqlalchemy import text

from evalsuite.analysis.analyze import analyze
from evalsuite.client import ApiClient
from evalsuite.evaluation.adapter_summary import SUMMARY_FIELDS, summarize
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.store import migrate
from evalsuite.store.db import make_engine
from evalsuite.testing.checkpoints import EXAMPLE_TASKS
from evalsuite.testing.results_json import results_json


def _flat(by_type: dict[str, dict]) -> dict[tuple[str, str], float | None]:
    """(module type, field) -> value, which pytest.approx compares (it takes no nesting)."""
    return {(t, k): s.get(k) for t, s in by_type.items() for k in SUMMARY_FIELDS}


def _expected(ckpt) -> dict[tuple[str, str], float | None]:
    """The per-type numbers from the analysis itself (its own route, all singular values)."""
    return _flat(analyze(ckpt, top=None)["by_type"])


def test_the_summary_is_the_analysis_per_type(rasa_checkpoint, lora_checkpoint, tiny_base):
    for ckpt, kind in ((rasa_checkpoint, "rasa"), (lora_checkpoint, "lora")):
        summary = summarize(ckpt, tiny_base)
        assert summary is not None and summary.kind == kind and summary.note is None
        got = _flat({t: s.model_dump() for t, s in summary.by_type.items()})
        assert got == pytest.approx(_expected(ckpt))
        shared = [s.mean_shared_fraction for s in summary.by_type.values()]
        assert all((f is not None and 0 < f < 1) if kind == "rasa" else f is None for f in shared)
    assert summarize(None, tiny_base) is None  # the base has no update


def test_a_full_fine_tune_is_skipped_with_a_note(tiny_base):
    summary = summarize(tiny_base, tiny_base)  # a full model directory: kind full
    assert summary is not None and summary.kind == "full" and summary.by_type == {}
    assert summary.note.startswith("skipped: a full update is not low-rank")
    assert "evalsuite adapter analyze" in summary.note


def test_a_failed_analysis_is_a_note_and_the_evaluation_goes_on(
    rasa_checkpoint, tiny_base, tmp_path, monkeypatch
):
    import evalsuite.analysis.analyze as module

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in the core SVD")

    monkeypatch.setattr(module, "analyze", broken)
    results = evaluate(
        EvalOptions(
            base=tiny_base, adapter=rasa_checkpoint, out=tmp_path / "out", tasks=["tiny_mc"],
            engine="hf", task_dirs=[EXAMPLE_TASKS], progress=False, limit=2,
        )
    )  # fmt: skip
    analysis = results["adapter_analysis"]
    assert analysis["kind"] == "rasa" and analysis["by_type"] == {}
    assert "RuntimeError: out of memory in the core SVD" in analysis["note"]
    assert results["tasks"]["tiny_mc"]["n_docs"] == 2  # scored all the same
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from served(request.param, tmp_path_factory.mktemp(request.param))


def test_the_service_stores_it_with_the_checkpoint(server, rasa_checkpoint, tiny_base):
    api = ApiClient(server.url, token=TOKEN)
    api.create_run(name="spectra", method="rasa", r=8, k=2, domain="code", base_model="tiny")
    reg = api.register_checkpoint(
        "spectra", epoch=1, uri=str(rasa_checkpoint), sha256="a1", suites=["code", "forgetting"]
    )
    assert reg["checkpoint"]["analysis"] is None
    summary = summarize(rasa_checkpoint, tiny_base).model_dump(mode="json")
    failed = {"kind": "rasa", "note": "analysis failed (RuntimeError: x)"}
    first, second = api.claim("w", 60), api.claim("w", 60)
    # the first job's analysis failed: its note is stored until a summary comes
    api.complete(
        first["id"], "w", {**results_json({"code": {"acc": 0.5}}), "adapter_analysis": failed}, {}
    )
    assert api.get_checkpoint(reg["checkpoint"]["id"])["analysis"]["note"] == failed["note"]
    api.complete(
        second["id"], "w", {**results_json({"f": {"acc": 0.5}}), "adapter_analysis": summary}, {}
    )
    stored = api.get_checkpoint(reg["checkpoint"]["id"])["analysis"]
    assert stored["kind"] == "rasa" and stored["note"] is None
    # the analysis run directly on the checkpoint's files
    assert _flat(stored["by_type"]) == pytest.approx(_expected(rasa_checkpoint))
    assert api.get_run("spectra")["checkpoints"][0]["analysis"] == stored


# a checkpoint stored before 0002, written as that revision's tables take it
OLD_ROWS = (
    "INSERT INTO base_models (id, name, created_at) VALUES (1, 'b', :t)",
    "INSERT INTO runs (id, name, method, domain, base_model_id, metadata, created_at) "
    "VALUES (1, 'r', 'lora', 'code', 1, '{}', :t)",
    "INSERT INTO checkpoints (id, run_id, epoch, uri, sha256, final, created_at) "
    "VALUES (7, 1, 2.0, '/c', 's', false, :t)",
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migration_keeps_checkpoints_and_adds_the_column(backend, tmp_path):
    url, drop = make_database(backend, tmp_path)
    try:
        migrate.upgrade(url, "0001")
        engine = make_engine(url)
        with engine.begin() as conn:
            for statement in OLD_ROWS:
                conn.execute(text(statement), {"t": "2026-01-01"})
        migrate.upgrade(url)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT id, epoch, analysis FROM checkpoints")).one()
        assert tuple(row) == (7, 2.0, None)
        migrate.downgrade(url, "0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM checkpoints")).scalar_one() == 7
        engine.dispose()
    finally:
        drop()


def test_a_copied_checkpoint_gives_the_same_summary(rasa_checkpoint, tiny_base, tmp_path):
    """The summary depends on the files alone (what the store keys a checkpoint by)."""
    copy = shutil.copytree(rasa_checkpoint, tmp_path / "copy")
    assert summarize(copy, tiny_base) == summarize(rasa_checkpoint, tiny_base)
