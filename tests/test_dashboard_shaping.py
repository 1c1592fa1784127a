"""Curve and record shaping for the dashboard pages, without Streamlit or an API."""

from __future__ import annotations

from pathlib import Path

from evalsuite.dashboard.app import api_url_from_argv
from evalsuite.dashboard.cli import APP_SCRIPT, streamlit_command
from evalsuite.dashboard.curves import best_epoch_of, curve_figure, series_from_curves
from evalsuite.dashboard.records import (
    code_failure_rows,
    math_answer_rows,
    score_rows,
)


def test_series_sorted_and_best_epoch():
    curves = [
        {"run": "a", "best_epoch": None, "points": [
            {"epoch": 3, "value": 0.5, "checkpoint_id": 3},
            {"epoch": 1, "value": 0.6, "checkpoint_id": 1},
            {"epoch": 2, "value": 0.6, "checkpoint_id": 2},
        ]},
        {"run": "b", "best_epoch": 2, "points": [{"epoch": 2, "value": 0.1, "checkpoint_id": 9}]},
    ]  # fmt: skip
    a, b = series_from_curves(curves)
    assert a.epochs == [1.0, 2.0, 3.0] and a.values == [0.6, 0.6, 0.5]
    assert a.best_epoch == 1.0  # ties go to the earlier epoch
    assert b.best_epoch == 2.0 and b.value_at(2.0) == 0.1 and b.value_at(5.0) is None
    assert best_epoch_of([], []) is None


def test_figure_marks_best_epoch_and_can_borrow_it():
    learning = series_from_curves(
        [{"run": "r", "best_epoch": 2, "points": [
            {"epoch": 1, "value": 0.2}, {"epoch": 2, "value": 0.4}, {"epoch": 3, "value": 0.3}]}]
    )  # fmt: skip
    fig = curve_figure(learning, "t", "y")
    line, star = fig.data
    assert list(line.y) == [20.0, 40.0, 30.0]
    assert list(star.x) == [2.0] and list(star.y) == [40.0] and star.marker.symbol == "star"
    forgetting = series_from_curves(
        [{"run": "r", "best_epoch": 1, "points": [
            {"epoch": 1, "value": 0.7}, {"epoch": 2, "value": 0.65}]}]
    )  # fmt: skip
    fig = curve_figure(forgetting, "f", "y", best_from={"r": 2.0})
    assert list(fig.data[1].x) == [2.0] and list(fig.data[1].y) == [65.0]


def test_records_read_details_and_top_level():
    code = code_failure_rows(
        [{"doc_id": "HumanEval/3", "sample_index": 1, "record": {"details": {
            "status": "fail", "failed_split": "plus", "failed_input": "[1, 2]"}}}]
    )  # fmt: skip
    assert code == [{"doc_id": "HumanEval/3", "sample": 1, "status": "fail",
                     "failed_split": "plus", "failed_input": "[1, 2]"}]  # fmt: skip
    math = math_answer_rows(
        [{"doc_id": "7", "sample_index": 0, "record": {"extracted": "1/2", "gold": "\\frac12",
          "paper": False, "robust": True, "status": "ok"}}]
    )  # fmt: skip
    assert math[0]["extracted"] == "1/2" and math[0]["paper"] is False and math[0]["robust"]


def test_scores_hide_breakdowns():
    scores = [
        {"task": "math", "metric": "acc", "value": 0.3, "engine": "vllm", "dtype": "bfloat16"},
        {"task": "math", "metric": "acc/level=1", "value": 0.9},
    ]
    assert [r["metric"] for r in score_rows(scores)] == ["acc"]
    assert score_rows(scores)[0]["engine"] == "vllm"
    assert len(score_rows(scores, breakdowns=True)) == 2


def test_cli_runs_the_packaged_entry_headless(monkeypatch):
    command = streamlit_command("http://api:9", 8601, "0.0.0.0")
    assert Path(command[4]) == APP_SCRIPT and APP_SCRIPT.is_file()
    assert APP_SCRIPT.parent.name == "dashboard" and APP_SCRIPT.parent.parent.name == "evalsuite"
    assert "--server.headless=true" in command and "--server.port=8601" in command
    assert command[-3:] == ["--", "--api", "http://api:9"]
    monkeypatch.setenv("EVALSUITE_API_URL", "http://from-env:1")
    assert api_url_from_argv(["--api", "http://from-argv:2"]) == "http://from-argv:2"
    assert api_url_from_argv([]) == "http://from-env:1"


def test_figure_labels_show_run_names_as_text():
    """Plotly renders <a href>, <b> and <br> in trace names and hovers: a hostile run name
    is escaped there, so it shows as the characters it is and makes no link."""
    hostile = '<a href="http://evil">x</a><b>'
    fig = curve_figure(
        series_from_curves(
            [{"run": hostile, "best_epoch": 1, "points": [{"epoch": 1, "value": 0.2}]}]
        ),
        "t",
        "y",
    )
    labels = [t.name or "" for t in fig.data] + [t.hovertemplate or "" for t in fig.data]
    assert not any("<a " in label or "<b>" in label for label in labels), labels
    assert any("&lt;a href" in label for label in labels)
