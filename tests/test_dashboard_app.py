"""Every dashboard page through Streamlit's AppTest, against the real API (uvicorn over a temp
SQLite file) seeded over HTTP with ``known_runs()``: the numbers shown, bold/italic, exports."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import httpx
import pytest

pytest.importorskip("evalsuite.api.app", reason="the results API (evalsuite.api) is not there")

from streamlit.testing.v1 import AppTest

from evalsuite.dashboard.table import from_table_data
from evalsuite.emphasis import BOLD
from evalsuite.settings import get_settings
from evalsuite.testing.dashboard_seed import (
    FAIL_REASON,
    LLAMA,
    MISTRAL,
    TOKEN,
    free_port,
    known_runs,
    live_api,
    seed,
)

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> str:
    with live_api(tmp_path_factory.mktemp("dash-api") / "results.db") as url:
        seed(url, known_runs())
        yield url


def run_app(monkeypatch, url: str, page: str = "leaderboard", token: str | None = None) -> AppTest:
    monkeypatch.setenv("EVALSUITE_API_URL", url)
    if token:
        monkeypatch.setenv("EVALSUITE_API_TOKEN", token)
    else:
        monkeypatch.delenv("EVALSUITE_API_TOKEN", raising=False)
    get_settings.cache_clear()  # the app reads the settings once per process
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table_cells(at: AppTest) -> dict[tuple[str, str, str], str]:
    """(run, base, column) -> the cell's inner HTML of the rendered leaderboard."""
    html = next(m.value for m in at.markdown if "evalsuite-leaderboard" in m.value)
    found = re.findall(
        r'data-run="([^"]*)" data-base="([^"]*)" data-col="([^"]*)">(.*?)</td>', html
    )
    return {(run, base, col): inner for run, base, col, inner in found}


def test_leaderboard_table1_numbers_and_emphasis(monkeypatch, api):
    at = run_app(monkeypatch, api)
    cells = table_cells(at)
    # Llama PASS@1 BEST: RaSA r=32 59.5 is the best of the model (bold); RaSA r=8 57.9 the
    # best of r=8 (italic); LoRA r=8 56.1 plain. LAST: r=32 LoRA 56.5 beats RaSA 56.2.
    assert cells[("llama-rasa-r32", LLAMA, "pass@1_best")] == "<b>59.5</b>"
    assert cells[("llama-rasa-r8", LLAMA, "pass@1_best")] == "<i>57.9</i>"
    assert cells[("llama-lora-r8", LLAMA, "pass@1_best")] == "56.1"
    assert cells[("llama-rasa-r8", LLAMA, "pass@1_last")] == "<b>56.9</b>"
    assert cells[("llama-lora-r32", LLAMA, "pass@1_last")] == "<i>56.5</i>"
    assert cells[("llama-vera-r1024", LLAMA, "pass@10_best")] == "66.5"
    assert cells[("mistral-rasa-r8", MISTRAL, "pass@1_best")] == "<b>50.0</b>"
    assert cells[("mistral-lora-r8", MISTRAL, "pass@1_last")] == "39.7"
    assert cells[("llama-rasa-r8", LLAMA, "train_time_s")] == "11.2h"
    assert cells[("llama-vera-r1024", LLAMA, "trainable_params")] == "1.6M"
    assert cells[("llama-lora-r8", LLAMA, "extra_params")] == "–"
    # bold agrees with the API's own emphasis on the unfiltered table
    table = httpx.get(f"{api}/v1/tables/code").json()
    for base, marks in table["emphasis"].items():
        for column, runs in marks["bold"].items():
            for run in runs:
                assert re.fullmatch(r"<b>.*</b>", cells[(run, base, column)]), (base, column)
    # the exports shown as text are the same view
    code = {c.language: c.value for c in at.code}
    assert "| 32 | RaSA | 11.5h | **59.5** | 56.2 |" in code["markdown"]
    assert "| 8 | RaSA | 11.2h | *57.9* | **56.9** |" in code["markdown"]
    assert r"\textbf{59.5}" in code["latex"] and r"\textit{56.5}" in code["latex"]
    rows = list(csv.DictReader(io.StringIO(code["text"])))
    rasa32 = next(r for r in rows if r[f"{LLAMA} run"] == "llama-rasa-r32")
    assert float(rasa32[f"{LLAMA} PASS@1 BEST"]) == 0.595
    assert float(rasa32[f"{LLAMA} Time"]) == 11.5 * 3600
    assert len(at.get("download_button")) == 3


def test_leaderboard_filters_and_paper_reference(monkeypatch, api):
    at = run_app(monkeypatch, api)
    methods = next(m for m in at.multiselect if m.label == "Methods")
    methods.set_value(["lora"]).run()
    cells = table_cells(at)
    assert {run for run, _, _ in cells if run} == {
        "llama-lora-r8",
        "llama-lora-r32",
        "mistral-lora-r8",
    }
    # without RaSA, LoRA r=32's 57.0 is the best of Llama
    assert cells[("llama-lora-r32", LLAMA, "pass@1_best")] == "<b>57.0</b>"
    next(t for t in at.toggle if t.label == "Paper reference rows").set_value(True).run()
    html = next(m.value for m in at.markdown if "evalsuite-leaderboard" in m.value)
    reference = re.search(r'<tr class="reference">(.*?)</tr>', html).group(1)
    # Table 1, r=8 LoRA: Llama 9.6h 56.1 53.0 71.2 68.5 21.0M; Mistral 10.7h 42.6 39.7 ...
    texts = re.findall(r"<td[^>]*>(.*?)</td>", reference)
    assert texts[:2] == ["8", "LoRA (paper)"]
    assert texts[2:8] == ["9.6h", "56.1", "53.0", "71.2", "68.5", "21.0M"]
    assert texts[9:13] == ["10.7h", "42.6", "39.7", "57.7"]
    assert "<b>" not in reference and "<i>" not in reference


def test_leaderboard_table2_math(monkeypatch, api):
    at = run_app(monkeypatch, api)
    at.radio(key="lb_domain").set_value("math").run()
    cells = table_cells(at)
    assert cells[("llama-fft-math", LLAMA, "acc_best")] == "<b>35.5</b>"
    assert cells[("llama-fft-math", LLAMA, "acc_last")] == "<b>34.6</b>"
    assert cells[("llama-rasa-r8-math", LLAMA, "acc_best")] == "30.3"
    assert cells[("llama-fft-math", LLAMA, "trainable_params")] == "7.5B"
    assert "Table 2" in at.subheader[0].value


def _chart(element) -> dict:
    return json.loads(element.proto.spec)


def test_curves_learning_forgetting_and_best_epoch(monkeypatch, api):
    at = run_app(monkeypatch, api, page="curves")
    runs = ["llama-lora-r8", "llama-rasa-r8", "mistral-rasa-r8"]
    at.multiselect(key="cv_runs").set_value(runs).run()
    assert not at.exception
    learning, forgetting = (_chart(c) for c in at.get("plotly_chart"))
    lines = {t["name"]: t for t in learning["data"] if t["mode"] == "lines+markers"}
    assert set(lines) == set(runs)
    assert lines["llama-lora-r8"]["y"] == pytest.approx([50.0, 56.1, 53.0])
    stars = [t for t in learning["data"] if t["mode"] == "markers"]
    lora_star = next(t for t in stars if t["legendgroup"] == "llama-lora-r8")
    assert lora_star["x"] == [2.0] and lora_star["y"] == pytest.approx([56.1])
    f_lines = {t["name"]: t for t in forgetting["data"] if t["mode"] == "lines+markers"}
    assert f_lines["llama-rasa-r8"]["y"] == pytest.approx([63.0, 62.5, 62.0])
    assert f_lines["mistral-rasa-r8"]["x"] == [2.0, 3.0]  # its epoch-1 forgetting job failed
    f_star = next(t for t in forgetting["data"] if t.get("legendgroup") == "llama-lora-r8"
                  and t["mode"] == "markers")  # fmt: skip
    assert f_star["x"] == [2.0] and f_star["y"] == pytest.approx([60.0])  # learning's BEST
    best = at.dataframe[0].value.set_index("run")
    assert best.loc["llama-rasa-r8", "BEST epoch"] == 2.0
    assert best.loc["llama-rasa-r8", "BEST pass@1"] == pytest.approx(0.579)


def test_checkpoint_scores_config_and_failing_code_samples(monkeypatch, api):
    at = run_app(monkeypatch, api, page="checkpoint")
    at.selectbox(key="ck_run").set_value("llama-rasa-r8").run()
    at.selectbox(key="ck_checkpoint").select_index(2).run()
    scores = at.dataframe[0].value.set_index("metric")
    assert scores.loc["pass@1", "value"] == pytest.approx(0.569)
    assert scores.loc["pass@1", "engine"] == "vllm"
    assert scores.loc["pass@1", "materialization"] == "merged"
    assert scores.loc["pass@1", "dtype"] == "bfloat16"
    assert scores.loc["pass@1", "data_sha256"] == "sha-humaneval_plus"
    samples = at.dataframe[1].value.set_index("doc_id")
    assert list(samples.index) == ["HumanEval/2", "HumanEval/3"]  # failing only: HumanEval/0 passed
    assert samples.loc["HumanEval/2", "failed_input"] == "[3.5, 1e-09]"
    assert samples.loc["HumanEval/2", "failed_split"] == "plus"
    assert samples.loc["HumanEval/3", "status"] == "timeout"


def test_checkpoint_math_answers_both_grading_modes(monkeypatch, api):
    at = run_app(monkeypatch, api, page="checkpoint")
    at.selectbox(key="ck_run").set_value("llama-rasa-r8-math").run()
    at.selectbox(key="ck_checkpoint").select_index(2).run()
    answers = at.dataframe[1].value.set_index("doc_id")
    assert answers.loc["algebra/1", "extracted"] == "1/2"
    assert answers.loc["algebra/1", "gold"] == "0.5"
    assert not answers.loc["algebra/1", "paper"] and answers.loc["algebra/1", "robust"]
    assert answers.loc["geometry/2", "paper"] and answers.loc["geometry/2", "robust"]


def test_queue_failures_and_retry(monkeypatch, api):
    at = run_app(monkeypatch, api, page="queue")
    counts = {m.label: m.value for m in at.metric}
    assert counts["FAILED"] == "1" and counts["PENDING"] == "0"
    finished = sum(1 for s in known_runs() for _ in s.epochs) + 2 * 3 + 3 - 1
    assert counts["FINISHED"] == str(finished)
    assert any("suite" in e.value and "attempts" in e.value for e in at.error)
    assert FAIL_REASON in [c.value for c in at.code]  # the reason as written, in a code block
    (retry,) = [b for b in at.button if b.label == "Retry"]
    assert retry.disabled  # no token yet
    at = run_app(monkeypatch, api, page="queue", token="not-the-token")
    next(b for b in at.button if b.label == "Retry").click().run()
    assert any("Retry of job" in e.value for e in at.error)  # the API's 401, as a message
    assert {m.label: m.value for m in at.metric}["FAILED"] == "1"
    at = run_app(monkeypatch, api, page="queue", token=TOKEN)
    (retry,) = [b for b in at.button if b.label == "Retry"]
    job_id = int(retry.key.removeprefix("retry-"))
    retry.click().run()
    assert not at.exception
    assert any("PENDING again" in s.value for s in at.success)
    assert httpx.get(f"{api}/v1/jobs/{job_id}").json()["status"] == "PENDING"
    assert {m.label: m.value for m in at.metric}["PENDING"] == "1"


def test_empty_database_says_how_to_submit(monkeypatch, tmp_path):
    with live_api(tmp_path / "empty.db") as url:
        at = run_app(monkeypatch, url)
        assert any("No code results yet" in i.value for i in at.info)
        assert any(f"curl -X POST {url}/v1/runs" in c.value for c in at.code)
        for page in ("curves", "checkpoint", "queue"):
            at = run_app(monkeypatch, url, page=page)
            assert any("yet" in i.value for i in at.info), page


def test_unreachable_api_is_a_banner(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    at = run_app(monkeypatch, url)
    assert len(at.error) == 1 and "not reachable" in at.error[0].value
    assert url in at.error[0].value


def test_view_emphasis_matches_api_on_unfiltered_tables(api):
    """Bold computed by the dashboard = the API's bold, for both tables (no ties seeded)."""
    for domain in ("code", "math"):
        data = httpx.get(f"{api}/v1/tables/{domain}").json()
        view = from_table_data(data)
        mine = {
            (b, k, view.rows[i].cells[b]["run"])
            for (i, b, k), mark in view.emphasis.items()
            if mark == BOLD
        }
        theirs = {
            (b, k, run)
            for b, m in data["emphasis"].items()
            for k, runs in m["bold"].items()
            for run in runs
        }
        assert mine == theirs
