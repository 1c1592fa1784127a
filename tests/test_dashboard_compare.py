"""The dashboard's Compare page against the real API (uvicorn over SQLite) seeded with a run
whose epochs differ on known documents: Streamlit's AppTest and headless Chromium show the
seeded flipped items and both epochs' answers; the page's tables as plain functions. The
curves page draws the stored stderr as bands and marks the epoch where two runs differ under
the gate's paired test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("evalsuite.api.app", reason="the results API (evalsuite.api) is not there")

from streamlit.testing.v1 import AppTest

from evalsuite.client import ApiClient
from evalsuite.dashboard.compare_rows import answer_view, flip_rows, lost_rows, metric_rows
from evalsuite.dashboard.curves import Series, band, significant_epochs
from evalsuite.settings import get_settings
from evalsuite.testing.compare_seed import (
    ANSWERS,
    CODE,
    FORGET,
    FORGOTTEN,
    LOST_CODE,
    LOST_MATH,
    OTHER,
    RUN,
    STDERR,
    seed_compare,
    seed_forgetting,
)
from evalsuite.testing.dashboard_seed import TOKEN, live_api, live_dashboard

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-compare")
    with live_api(root / "results.db") as url:
        ids = seed_compare(url, TOKEN, root)
        seed_forgetting(url, TOKEN, root)
        yield url, ids


def _app(monkeypatch, url: str, page: str = "compare", **params: str) -> AppTest:
    monkeypatch.setenv("EVALSUITE_API_URL", url)
    monkeypatch.delenv("EVALSUITE_API_TOKEN", raising=False)
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = page
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


FRAMES = {"cmp_metrics": 0, "cmp_flips": 1}  # the page's order: metrics, then the flips


def _frame(at: AppTest, key: str):
    return at.dataframe[FRAMES[key]].value


def _codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_default_is_best_against_last_and_shows_the_flip(monkeypatch, api):
    url, _ = api
    at = _app(monkeypatch, url)
    assert at.selectbox(key="cmp_sel_A").value == "best"
    assert at.selectbox(key="cmp_sel_B").value == "last"
    assert at.selectbox(key="cmp_task").value == "humaneval_plus"
    flips = _frame(at, "cmp_flips")
    assert list(flips["doc_id"]) == [LOST_CODE]
    assert list(flips["change"]) == ["solved -> failed"]
    assert CODE[1].rstrip() in _codes(at) and CODE[2].rstrip() in _codes(at)


def test_math_item_shows_both_answers(monkeypatch, api):
    url, ids = api
    at = _app(monkeypatch, url, a=str(ids[1]), b=f"{RUN}@2")
    at.selectbox(key="cmp_task").set_value("math").run()
    assert not at.exception
    assert list(_frame(at, "cmp_flips")["doc_id"]) == [LOST_MATH]
    assert at.selectbox(key="cmp_doc").value == LOST_MATH
    assert ANSWERS[1] in _codes(at) and ANSWERS[2] in _codes(at)
    metrics = _frame(at, "cmp_metrics")
    acc = metrics[metrics["metric"] == "acc"].iloc[0]
    assert acc["B - A"] == pytest.approx(-100 / 8, abs=0.01)  # one of 8 problems lost


def test_an_unknown_run_is_a_banner(monkeypatch, api):
    url, _ = api
    at = _app(monkeypatch, url, a="nope@best", b=f"{RUN}@last")
    assert any("404" in e.value for e in at.error)


def test_rows_from_a_report():
    task = {
        "lost": [{"doc_id": "d1", "a": {"acc": 1.0}, "b": {"acc": 0.0}}],
        "gained": [{"doc_id": "d2", "a": {"acc": 0.0}, "b": {"acc": 1.0}}],
        "metrics": [
            {"metric": "acc", "reason": None, "result": {"p_value": 0.5},
             "points": {"baseline": 50.0, "candidate": 50.0, "diff": 0.0,
                        "ci_low": -10.0, "ci_high": 10.0}},
            {"metric": "acc_robust", "reason": "prompt_sha256 differs", "result": None,
             "points": None},
        ],
    }  # fmt: skip
    assert flip_rows(task) == [
        {"doc_id": "d1", "change": "solved -> failed", "A": "acc 1", "B": "acc 0"},
        {"doc_id": "d2", "change": "failed -> solved", "A": "acc 0", "B": "acc 1"},
    ]
    rows = metric_rows(task)
    assert rows[0]["interval"] == "[-10.00, +10.00]" and rows[1]["interval"].startswith("prompt")


def test_multiple_choice_answer_names_each_rules_ending():
    record = {
        "details": {
            "choices": [" a long ending", " b"],
            "loglikelihoods": [-3.0, -2.0],  # acc: " b"; per byte -0.21 vs -1.0: acc_norm " a..."
            "target": 0,
            "acc": 0.0,
            "acc_norm": 1.0,
            "context": "ctx",
        }
    }
    fields = answer_view("hellaswag", record)["fields"]
    assert fields["chosen (acc)"] == " b"
    assert fields["chosen (acc_norm)"] == " a long ending"
    assert fields["right ending"] == " a long ending"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium")
def test_browser_shows_the_flipped_item_and_both_answers(api):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from test_dashboard_browser import CHROMIUM_ARGS

    url, _ = api
    with live_dashboard(url) as page_url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        page.goto(f"{page_url}?page=compare", wait_until="domcontentloaded")
        page.get_by_text("return sorted(xs)").first.wait_for(timeout=60_000)
        assert page.get_by_text("return xs[0]").count() >= 1
        assert page.get_by_text(f"A = {RUN}@best").count() >= 1
        assert page.get_by_text("1 lost, 0 gained").count() >= 1
        browser.close()


def _chart(element) -> dict:
    return json.loads(element.proto.spec)


def test_curves_bands_and_significant_epochs(monkeypatch, api):
    url, _ = api
    monkeypatch.setenv("EVALSUITE_API_URL", url)
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = "curves"
    at.run()
    at.radio(key="cv_domain").set_value("math").run()
    at.toggle(key="cv_significance").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cv_sig_a").value == RUN and at.selectbox(key="cv_sig_b").value == OTHER
    learning = _chart(at.get("plotly_chart")[0])
    line = next(t for t in learning["data"] if t.get("name") == RUN)
    values = [v / 100 for v in line["y"]]  # acc per epoch: 5/8, then 4/8
    assert values == pytest.approx([5 / 8, 4 / 8])
    band_trace = next(t for t in learning["data"] if t.get("name", "").startswith(f"{RUN} +-"))
    upper = [100 * (v + 1.96 * STDERR[e]) for e, v in zip((1, 2), values, strict=True)]
    lower = [100 * (v - 1.96 * STDERR[e]) for e, v in zip((1, 2), values, strict=True)]
    assert band_trace["y"] == pytest.approx(upper + lower[::-1])
    marks = next(t for t in learning["data"] if t.get("legendgroup") == "significance")
    assert marks["x"] == [1.0] and marks["y"] == pytest.approx([0.0])  # OTHER solved none
    assert any("significant at 1 of 2 common epochs" in c.value for c in at.caption)


def test_significant_epochs_reads_the_interval():
    def report(lo, hi, reason=None):
        points = {"diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}
        metric = {"metric": "acc", "points": None if reason else points, "reason": reason}
        return {"tasks": [{"task": "math", "metrics": [metric]}]}

    reports = {1.0: report(-9.0, -1.0), 2.0: report(-3.0, 2.0), 3.0: report(0.5, 4.0),
               4.0: report(0, 0, reason="partial")}  # fmt: skip
    marks = significant_epochs(reports, "math", "acc")
    assert [m.epoch for m in marks] == [1.0, 3.0]
    assert significant_epochs(reports, "math", "acc_robust") == []


def test_band_only_where_a_stderr_is_stored():
    s = Series("r", [1.0, 2.0, 3.0], [0.5, 0.6, 0.7], 3.0, [0.01, None, 0.02])
    epochs, lower, upper = band(s)
    assert epochs == [1.0, 3.0]
    assert lower == pytest.approx([50 - 1.96, 70 - 3.92]) and upper == pytest.approx(
        [50 + 1.96, 70 + 3.92]
    )


def test_api_curves_and_tables_carry_the_stored_stderr(api):
    url, _ = api
    with ApiClient(url) as client:
        (curve,) = client.curves([RUN], "math", "acc")
        assert [p["stderr"] for p in curve["points"]] == [STDERR[1], STDERR[2]]
        table = client.table("math")
    cell = next(row for row in table["rows"] if row["run"] == RUN)["cells"]["tiny"]
    assert cell["acc_best_stderr"] == STDERR[1]  # BEST is epoch 1 (5/8), LAST epoch 2
    assert cell["acc_last_stderr"] == STDERR[2]


def test_leaderboard_cell_tooltip_gives_the_interval(monkeypatch, api):
    url, _ = api
    at = _app(monkeypatch, url, page="leaderboard")
    at.radio(key="lb_domain").set_value("math").run()
    html = next(m.value for m in at.markdown if "evalsuite-leaderboard" in m.value)
    half = 100 * 1.96 * STDERR[1]
    cell = re.search(
        rf'<td title="([^"]*)" data-run="{RUN}" data-base="tiny" data-col="acc_best">', html
    )
    assert cell is not None, html
    assert cell.group(1).startswith(f"62.5 +- {half:.1f} points")
    assert f'data-run="{RUN}" data-base="tiny" data-col="trainable_params">' in html  # no title


def test_forgetting_items_lost_since_the_base(monkeypatch, api):
    url, _ = api
    at = _app(monkeypatch, url, page="curves")
    at.radio(key="cv_domain").set_value("math").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cv_forget_run").options == [FORGET]  # the one run with an epoch 0
    assert at.selectbox(key="cv_forget_epoch").value == 1.0
    items = at.dataframe[1].value  # after the BEST table
    found = {(t, d) for t, d in zip(items["task"], items["doc_id"], strict=True)}
    assert found == {(t, d) for t, docs in FORGOTTEN.items() for d in docs}
    assert set(items["base"]) == {1.0} and set(items["checkpoint"]) == {0.0}


def test_lost_rows_keeps_the_member_tasks_only():
    report = {
        "tasks": [
            {"task": "hellaswag", "lost": [{"doc_id": "7", "a": {"acc_norm": 1.0},
                                            "b": {"acc_norm": 0.0}}]},
            {"task": "math", "lost": [{"doc_id": "m", "a": {"acc": 1.0}, "b": {"acc": 0.0}}]},
        ]
    }  # fmt: skip
    rows = lost_rows(report, {"hellaswag": "acc_norm", "winogrande": "acc"})
    assert rows == [
        {"task": "hellaswag", "doc_id": "7", "metric": "acc_norm", "base": 1.0, "checkpoint": 0.0}
    ]
