"""Compare page: two checkpoints item by item (``GET /v1/compare``), then one flipped
document's answers side by side. Default: a run's BEST epoch against its LAST."""

from __future__ import annotations

from typing import Any

import streamlit as st

from evalsuite.dashboard.compare_rows import answer_view, flip_rows, metric_rows
from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.dashboard.escape import md_text

ANSWERS_SHOWN = 3  # samples of one document shown per side (HumanEval+ has 50)


def _side(conn: Conn, column: Any, label: str, runs: list[str], run: str, default: str) -> str:
    """A run and a selector (best, last or an epoch) -> ``RUN@sel``."""
    c1, c2 = column.columns(2)
    chosen = c1.selectbox(f"Run {label}", runs, index=runs.index(run), key=f"cmp_run_{label}")
    epochs = sorted(c["epoch"] for c in get(conn, "get_run", chosen).get("checkpoints", []))
    options = ["best", "last", *(f"{e:g}" for e in epochs)]
    selector = c2.selectbox(
        f"Checkpoint {label}",
        options,
        index=options.index(default),
        format_func=lambda o: o if o in ("best", "last") else f"epoch {o}",
        key=f"cmp_sel_{label}",
    )
    return f"{chosen}@{selector}"


def _refs(conn: Conn) -> tuple[str, str] | None:
    """``?a=REF&b=REF`` (checkpoint ids or RUN@sel), else the pickers."""
    a, b = st.query_params.get("a"), st.query_params.get("b")
    if a and b:
        return a, b
    runs = [r["name"] for r in get(conn, "list_runs")]
    if not runs:
        empty_state(conn.url, "checkpoints")
        return None
    left, right = st.columns(2)
    ref_a = _side(conn, left, "A", runs, runs[0], "best")
    ref_b = _side(conn, right, "B", runs, ref_a.rsplit("@", 1)[0], "last")
    return ref_a, ref_b


def _answers(conn: Conn, column: Any, label: str, checkpoint: int | None, task: str, doc: str):
    column.markdown(f"**{md_text(label, inline=True)}**")
    if checkpoint is None:
        column.info("No checkpoint id: answers are only in the results directory.")
        return
    page = get(conn, "samples", checkpoint, task, False, ANSWERS_SHOWN, 0, doc)
    items = page.get("items", [])
    column.caption(f"checkpoint {checkpoint}: {page.get('total', len(items))} sample(s)")
    for item in items:
        view = answer_view(task, item.get("record") or {})
        column.table({k: [str(v)] for k, v in view["fields"].items()})
        column.code(view["text"] or "(no text recorded)", language=view["language"])


def render(conn: Conn) -> None:
    """Flips per task (pick one), the metrics with the gate's interval, both answers."""
    refs = _refs(conn)
    if refs is None:
        return
    ref_a, ref_b = refs
    report = get(conn, "compare", ref_a, ref_b)
    st.subheader(f"A = {md_text(ref_a, inline=True)}  vs  B = {md_text(ref_b, inline=True)}")
    for reason in report.get("reasons", []):
        st.warning(md_text(reason))
    tasks = {t["task"]: t for t in report.get("tasks", [])}
    if not tasks:
        return
    name = st.selectbox("Task", list(tasks), key="cmp_task")
    task = tasks[name]
    if task.get("reason"):
        st.warning(md_text(f"{name} cannot be compared: {task['reason']}"))
        return
    c = task["counts"]
    st.caption(
        f"{task['n_docs']} documents, flips by {task['flip_metric']}: {c['lost']} lost, "
        f"{c['gained']} gained, {c['both_solved']} solved by both, {c['both_failed']} by "
        f"neither · A: {md_text(task['a_where'])} · B: {md_text(task['b_where'])}"
    )
    st.dataframe(metric_rows(task), hide_index=True, key="cmp_metrics")
    rows = flip_rows(task)
    if not rows:
        st.info("No document flipped.")
        return
    st.dataframe(rows, hide_index=True, key="cmp_flips")
    doc = st.selectbox("Flipped document", [r["doc_id"] for r in rows], key="cmp_doc")
    left, right = st.columns(2)
    _answers(conn, left, f"A: {ref_a}", task.get("a_checkpoint"), name, doc)
    _answers(conn, right, f"B: {ref_b}", task.get("b_checkpoint"), name, doc)
