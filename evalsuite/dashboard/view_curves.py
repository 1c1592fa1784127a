"""Curves page: a metric vs epoch per run (learning) and the forgetting score vs epoch."""

from __future__ import annotations

import streamlit as st

from evalsuite.dashboard.curves import (
    BAND_Z,
    Series,
    Significant,
    curve_figure,
    series_from_curves,
    significant_epochs,
)
from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.protocol import forgetting, paper_tables, task_metrics

# the learning metrics per domain (every metric its table's task declares) by display name
LEARNING = {
    domain: {m.display: (table.task, m.metric) for m in task_metrics(table.task)}
    for domain, table in paper_tables().items()
}
SCORE = forgetting()
FORGETTING = (SCORE.task, SCORE.metric)
PAIRED_N_BOOT = 2000  # resamples per epoch for the significance marks


def _significance(
    conn: Conn, learning: list[Series], task: str, metric: str
) -> tuple[str, str, list[Significant]] | None:
    """Two of the runs and the epochs where they differ under the gate's paired test."""
    runs = [s.run for s in learning]
    if len(runs) < 2 or not st.toggle(
        "Mark epochs where two runs differ significantly (the gate's paired test)",
        key="cv_significance",
    ):
        return None
    c1, c2 = st.columns(2)
    run_a = c1.selectbox("Run A", runs, index=0, key="cv_sig_a")
    run_b = c2.selectbox("Run B", runs, index=1, key="cv_sig_b")
    epochs_of = {s.run: set(s.epochs) for s in learning}
    common = sorted(epochs_of[run_a] & epochs_of[run_b])
    reports = {
        e: get(conn, "compare", f"{run_a}@{e:g}", f"{run_b}@{e:g}", task, PAIRED_N_BOOT)
        for e in common
    }
    marks = significant_epochs(reports, task, metric)
    refused = [e for e, r in reports.items() if r.get("reasons") or any(
        t.get("reason") for t in r.get("tasks", []))]  # fmt: skip
    st.caption(
        f"{run_b} - {run_a}: significant at {len(marks)} of {len(common)} common epochs "
        f"(diamonds; paired bootstrap, {PAIRED_N_BOOT} resamples)"
        + (f"; not comparable at epochs {', '.join(f'{e:g}' for e in refused)}" if refused else "")
    )
    return run_a, run_b, marks


def render(conn: Conn) -> None:
    """Pick runs, plot learning and forgetting; the BEST epoch is starred on both."""
    domain = st.radio("Domain", list(LEARNING), horizontal=True, key="cv_domain")
    runs = [r["name"] for r in get(conn, "list_runs", domain)]
    if not runs:
        empty_state(conn.url, f"{domain} runs", domain)
        return
    chosen = st.multiselect("Runs", runs, default=runs[: min(4, len(runs))], key="cv_runs")
    label = st.selectbox("Learning metric", list(LEARNING[domain]), key="cv_metric")
    if not chosen:
        st.info("Choose at least one run.")
        return
    task, metric = LEARNING[domain][label]
    learning = series_from_curves(get(conn, "curves", chosen, task, metric))
    forgetting = series_from_curves(get(conn, "curves", chosen, *FORGETTING))
    best = {s.run: s.best_epoch for s in learning}
    significant = _significance(conn, learning, task, metric)
    st.caption(f"Bands: +-{BAND_Z:g} stored stderr (a normal 95% interval) where one is stored.")
    st.plotly_chart(
        curve_figure(learning, f"Learning: {label}", f"{metric} (%)", significant=significant)
    )
    st.plotly_chart(
        curve_figure(
            forgetting,
            SCORE.display,
            f"{SCORE.metric} (%)",
            best_from=best,
        )
    )
    st.dataframe(
        [
            {
                "run": s.run,
                "BEST epoch": s.best_epoch,
                f"BEST {metric}": s.value_at(s.best_epoch),
                "forgetting at BEST": next(
                    (f.value_at(s.best_epoch) for f in forgetting if f.run == s.run), None
                ),
                "epochs": len(s.epochs),
            }
            for s in learning
        ],
        hide_index=True,
    )
