"""Curves page: a metric vs epoch per run (learning) and the forgetting score vs epoch."""

from __future__ import annotations

import streamlit as st

from evalsuite.dashboard.curves import curve_figure, series_from_curves
from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.protocol import forgetting, paper_tables, task_metrics

# the learning metrics per domain (every metric its table's task declares) by display name
LEARNING = {
    domain: {m.display: (table.task, m.metric) for m in task_metrics(table.task)}
    for domain, table in paper_tables().items()
}
SCORE = forgetting()
FORGETTING = (SCORE.task, SCORE.metric)


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
    st.plotly_chart(curve_figure(learning, f"Learning: {label}", f"{metric} (%)"))
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
