"""The base model as epoch 0 of a run (issue 20), through real HTTP on SQLite and PostgreSQL:
it is on the curves and named by ``RUN@0``, but never BEST or LAST (leaderboard, tables, the
gate's and compare's selectors), even where it scores highest. The worker's side (the base
evaluated with no adapter) is tests/test_worker.py's; here, that it checks the base's
fingerprint first."""

from __future__ import annotations

import pytest
from service_support import BACKENDS, TOKEN, results_with, served

from evalsuite.base_epoch import BASE_URI
from evalsuite.client import ApiClient
from evalsuite.dashboard.curves import series_from_curves
from evalsuite.evaluation.materialize import model_fingerprint
from evalsuite.evaluation.runner import EvalOptions
from evalsuite.gate.api_source import ApiSource
from evalsuite.gate.evidence import GateInputError
from evalsuite.worker.job import ERROR_FILE, USER_ERROR, run_here

# epoch -> (pass@1, final); the base (epoch 0) scores highest
EPOCHS = {0.0: (0.90, False), 1.0: (0.40, False), 2.0: (0.55, True), 3.0: (0.50, False)}


@pytest.fixture(scope="module", params=BACKENDS)
def api(request, tmp_path_factory):
    for server in served(request.param, tmp_path_factory.mktemp(request.param)):
        client = ApiClient(server.url, token=TOKEN)
        for run in ("with-base", "only-base"):
            client.create_run(name=run, method="lora", r=8, domain="code", base_model="B")
        for run, epochs in (("with-base", EPOCHS), ("only-base", {0.0: (0.9, False)})):
            for epoch, (p1, final) in epochs.items():
                uri = BASE_URI if epoch == 0 else f"/ckpt/{epoch}"
                client.register_checkpoint(
                    run, epoch=epoch, uri=uri, sha256=f"{run}-{epoch}", final=final,
                    suites=["code"],
                )  # fmt: skip
                job = client.claim("w", 60)
                results = results_with({"humaneval_plus": {"pass@1": p1, "pass@10": p1}})
                client.complete(job["id"], "w", results, {})
        yield client


def test_best_and_last_never_pick_the_base(api):
    board = {row["run"]: row for row in api.leaderboard("humaneval_plus", "pass@1")}
    row = board["with-base"]
    assert (row["best"], row["best_epoch"]) == (0.55, 2.0)
    assert (row["last"], row["last_epoch"]) == (0.55, 2.0)
    assert row["n_epochs"] == 3
    assert "only-base" not in board  # a run with only its base has no fine-tuned result
    table = api.table("code")
    cells = next(r for r in table["rows"] if r["run"] == "with-base")["cells"]["B"]
    assert (cells["pass@1_best"], cells["pass@1_last"]) == (0.55, 0.55)


def test_curves_start_at_the_base(api):
    curve = api.curves(["with-base"], "humaneval_plus", "pass@1")[0]
    assert [p["epoch"] for p in curve["points"]] == [0.0, 1.0, 2.0, 3.0]
    assert curve["best_epoch"] == 2.0
    (series,) = series_from_curves([{**curve, "best_epoch": None}])  # the dashboard's own rule
    assert series.best_epoch == 2.0


def test_gate_and_compare_selectors_skip_the_base_but_name_it_at_0(api):
    def chosen(ref: str) -> float:
        source = ApiSource(api, ref, "candidate")
        if source.selector == "best":
            return source._best_checkpoint("humaneval_plus", "pass@1")["epoch"]
        return source._fixed_checkpoint()["epoch"]

    assert chosen("with-base@best") == 2.0
    assert chosen("with-base@last") == 2.0
    assert chosen("with-base@0") == 0.0
    with pytest.raises(GateInputError, match="only its base"):
        chosen("only-base@last")
    assert chosen("only-base@0") == 0.0


def test_the_worker_refuses_a_base_whose_files_changed(tiny_base, tmp_path):
    """Epoch 0 is registered with the base's fingerprint; other weights at that path fail the
    job with the reason before any engine starts (the worker test runs the matching one)."""
    opts = EvalOptions(base=tiny_base, adapter=None, out=tmp_path, suite="tiny", engine="hf")
    assert run_here(opts, "0" * 64) == USER_ERROR
    reason = (tmp_path / ERROR_FILE).read_text()
    assert f"has fingerprint {model_fingerprint(tiny_base)}" in reason
    assert not (tmp_path / "results.json").exists()
