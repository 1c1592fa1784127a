"""The adapter analysis on the dashboard (issue 20), through Streamlit's AppTest against the
real API (uvicorn over a temp SQLite file) seeded over HTTP: the checkpoint page's table per
module type, a skipped kind's note, and the curves page's quantity over epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("evalsuite.api.app", reason="the results API (evalsuite.api) is not there")

from streamlit.testing.v1 import AppTest

from evalsuite.client import ApiClient
from evalsuite.dashboard.escape import md_text
from evalsuite.settings import get_settings
from evalsuite.testing.dashboard_seed import TOKEN, live_api
from evalsuite.testing.results_json import results_json

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
REPORTED = "the update s*B*A; exact, from the low-rank factors"


def _summary(norm: float, entropy: float, shared: float | None = None) -> dict:
    return {
        "layers": 2,
        "frobenius": norm * 1.5,
        "mean_frobenius": norm,
        "max_frobenius": norm * 1.2,
        "mean_spectral_entropy_rank": entropy,
        "mean_energy_rank_90": 3.5,
        "mean_shared_fraction": shared,
    }


# run -> [(epoch, adapter_analysis)]
RUNS = {
    "spec-lora": [
        (1.0, {"kind": "lora", "reported": REPORTED,
               "by_type": {"mlp.up_proj": _summary(0.5, 4.0),
                           "self_attn.q_proj": _summary(0.2, 6.0)}}),
        (2.0, {"kind": "lora", "reported": REPORTED,
               "by_type": {"mlp.up_proj": _summary(0.9, 3.0),
                           "self_attn.q_proj": _summary(0.3, 5.5)}}),
    ],
    "spec-rasa": [
        (1.0, {"kind": "rasa", "reported": REPORTED,
               "by_type": {"mlp.up_proj": _summary(0.7, 7.0, 0.25)}}),
        (2.0, {"kind": "rasa", "reported": REPORTED,
               "by_type": {"mlp.up_proj": _summary(1.1, 6.5, 0.40)}}),
    ],
    "spec-full": [(1.0, {"kind": "full", "note": "skipped: a full update is not low-rank"})],
}  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> tuple[str, dict[tuple[str, float], int]]:
    """The API with RUNS stored; also (run, epoch) -> checkpoint id."""
    with live_api(tmp_path_factory.mktemp("spectrum-api") / "results.db") as url:
        client = ApiClient(url, token=TOKEN)
        ids = {}
        for run, checkpoints in RUNS.items():
            client.create_run(name=run, method=run.split("-")[1], r=8, domain="code",
                              base_model="B")  # fmt: skip
            for epoch, analysis in checkpoints:
                reg = client.register_checkpoint(
                    run, epoch=epoch, uri=f"/{run}/{epoch}", sha256=f"{run}{epoch}",
                    suites=["code"],
                )  # fmt: skip
                ids[(run, epoch)] = reg["checkpoint"]["id"]
                job = client.claim("w", 60)
                results = results_json({"humaneval_plus": {"pass@1": 0.5, "pass@10": 0.6}})
                client.complete(job["id"], "w", {**results, "adapter_analysis": analysis}, {})
        yield url, ids


def _app(monkeypatch, url: str, **params: str) -> AppTest:
    monkeypatch.setenv("EVALSUITE_API_URL", url)
    monkeypatch.delenv("EVALSUITE_API_TOKEN", raising=False)
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_checkpoint_page_shows_the_update_per_module_type(monkeypatch, api):
    url, ids = api
    at = _app(monkeypatch, url, page="checkpoint", checkpoint=str(ids[("spec-rasa", 2.0)]))
    assert any(s.value == "Adapter update" for s in at.subheader)
    assert any(md_text(REPORTED) in c.value for c in at.caption)  # shown as text
    table = at.dataframe[0].value.set_index("module type")
    assert list(table.index) == ["mlp.up_proj"]
    row = table.loc["mlp.up_proj"]
    assert row["layers"] == 2
    assert row["mean Frobenius norm"] == pytest.approx(1.1)
    assert row["max Frobenius norm"] == pytest.approx(1.32)
    assert row["spectral entropy rank (mean)"] == pytest.approx(6.5)
    assert row["energy rank 90% (mean)"] == pytest.approx(3.5)
    assert row["RaSA shared-pool share (mean)"] == pytest.approx(0.40)
    # the scores table follows it
    assert "pass@1" in set(at.dataframe[1].value["metric"])


def test_a_skipped_kind_shows_its_note(monkeypatch, api):
    url, ids = api
    at = _app(monkeypatch, url, page="checkpoint", checkpoint=str(ids[("spec-full", 1.0)]))
    assert any(md_text("skipped: a full update is not low-rank") in i.value for i in at.info)
    assert "pass@1" in set(at.dataframe[0].value["metric"])  # no analysis table, scores only


def test_curves_page_plots_a_quantity_over_epochs(monkeypatch, api):
    url, _ = api
    at = _app(monkeypatch, url, page="curves")
    at.multiselect(key="cv_runs").set_value(["spec-lora", "spec-rasa", "spec-full"]).run()
    assert at.selectbox(key="cv_spectrum_type").options == ["mlp.up_proj", "self_attn.q_proj"]
    at.selectbox(key="cv_spectrum_quantity").set_value("mean Frobenius norm").run()
    at.selectbox(key="cv_spectrum_type").set_value("mlp.up_proj").run()
    assert not at.exception
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    lines = {t["name"]: t for t in chart["data"]}
    assert set(lines) == {"spec-lora", "spec-rasa"}  # the full fine-tune has no summary
    assert lines["spec-lora"]["x"] == [1.0, 2.0]
    assert lines["spec-lora"]["y"] == pytest.approx([0.5, 0.9])
    assert lines["spec-rasa"]["y"] == pytest.approx([0.7, 1.1])
    at.selectbox(key="cv_spectrum_quantity").set_value("RaSA shared-pool share (mean)").run()
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [(t["name"], t["y"]) for t in chart["data"]] == [("spec-rasa", [0.25, 0.40])]
    at.selectbox(key="cv_spectrum_type").set_value("self_attn.q_proj").run()
    assert any("No chosen run has RaSA shared-pool share" in i.value for i in at.info)
