"""Curves page: a metric vs epoch per run (learning) with stderr bands and the epochs where two
runs differ significantly, the forgetting score vs epoch, the forgetting items (what the
base, a run's epoch 0, solved and a checkpoint lost), and the adapter update's norm and
spectrum over epochs (the analysis the worker stores with each checkpoint)."""

from __future__ import annotations

import streamlit as st

from evalsuite.dashboard.compare_rows import lost_rows
from evalsuite.dashboard.curves import (
    BAND_Z,
    Series,
    Significant,
    curve_figure,
    series_from_curves,
    significant_epochs,
)
from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.dashboard.escape import md_text
from evalsuite.dashboard.spectrum import QUANTITIES, module_types, spectrum_figure, spectrum_lines
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
        f"{md_text(run_b)} - {md_text(run_a)}: significant at {len(marks)} of {len(common)} "
        "common epochs "
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
    _forgetting_items(conn, chosen, best)
    _spectrum(conn, chosen)


def _spectrum(conn: Conn, chosen: list[str]) -> None:
    """One quantity of one module type's update against epoch, a line per run."""
    st.subheader("Adapter update over epochs")
    checkpoints = {r: get(conn, "get_run", r).get("checkpoints", []) for r in chosen}
    types = module_types(checkpoints)
    if not types:
        st.caption(
            "No adapter analysis stored for the chosen runs' checkpoints (computed by the "
            "worker for low-rank kinds; full fine-tunes, DoRA and MoRA are skipped)."
        )
        return
    c1, c2 = st.columns(2)
    label = c1.selectbox("Quantity", list(QUANTITIES), key="cv_spectrum_quantity")
    mtype = c2.selectbox("Module type", types, key="cv_spectrum_type")
    lines = spectrum_lines(checkpoints, mtype, QUANTITIES[label])
    if lines:
        st.plotly_chart(spectrum_figure(lines, mtype, label), key="cv_spectrum")
    else:
        st.info(f"No chosen run has {label} for {md_text(mtype)}.")


def _forgetting_items(conn: Conn, chosen: list[str], best: dict[str, float | None]) -> None:
    """The items behind the forgetting curve: what the base (a run's epoch 0) got right and a
    checkpoint lost, through ``GET /v1/compare`` (the gate's per-document values)."""
    st.subheader("Forgetting items: solved by the base, lost by a checkpoint")
    epochs = {
        r: sorted(c["epoch"] for c in get(conn, "get_run", r).get("checkpoints", []))
        for r in chosen
    }
    with_base = [r for r in chosen if 0.0 in epochs[r] and len(epochs[r]) > 1]
    if not with_base:
        st.caption(
            "Shown for runs whose epoch 0 is the base model evaluated as a checkpoint (no "
            "adapter; 'evalsuite submit --base-as-epoch-0' registers it); none of the chosen "
            "runs has one."
        )
        return
    c1, c2 = st.columns(2)
    run = c1.selectbox("Run", with_base, key="cv_forget_run")
    later = [e for e in epochs[run] if e > 0]
    default = best.get(run) if best.get(run) in later else later[-1]
    epoch = c2.selectbox(
        "Epoch", later, index=later.index(default), format_func=lambda e: f"{e:g}",
        key="cv_forget_epoch",
    )  # fmt: skip
    report = get(conn, "compare", f"{run}@0", f"{run}@{epoch:g}")
    refused = [f"{t['task']}: {t['reason']}" for t in report.get("tasks", []) if t.get("reason")]
    for reason in report.get("reasons", []) + refused:
        st.warning(md_text(reason))
    rows = lost_rows(report, SCORE.members)
    if rows:
        st.dataframe(rows, hide_index=True, key="cv_forget_items")
    else:
        st.info(f"No {', '.join(SCORE.members)} item the base solved was lost at epoch {epoch:g}.")
