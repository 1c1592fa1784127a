"""Checkpoint page: its scores with their config, its adapter's update per module type, and
a browser over its samples."""

from __future__ import annotations

import streamlit as st

from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.dashboard.escape import md_text
from evalsuite.dashboard.records import clip, code_failure_rows, math_answer_rows, score_rows
from evalsuite.dashboard.spectrum import analysis_rows
from evalsuite.protocol import forgetting, paper_tables

PAGE_SIZE = 25


def _pick_checkpoint(conn: Conn) -> int | None:
    """Run, then epoch; ``?checkpoint=ID`` jumps straight to one."""
    wanted = st.query_params.get("checkpoint")
    if wanted and wanted.isdigit():
        return int(wanted)
    runs = [r["name"] for r in get(conn, "list_runs")]
    if not runs:
        empty_state(conn.url, "checkpoints")
        return None
    c1, c2 = st.columns(2)
    run = c1.selectbox("Run", runs, key="ck_run")
    checkpoints = sorted(get(conn, "get_run", run).get("checkpoints", []), key=lambda c: c["epoch"])
    if not checkpoints:
        st.info(f"Run {md_text(run)} has no checkpoint yet.")
        return None
    chosen = c2.selectbox(
        "Checkpoint",
        checkpoints,
        index=len(checkpoints) - 1,  # the latest: usually the one being asked about
        format_func=lambda c: (
            f"epoch {c['epoch']:g} (step {c.get('step')}, id {c['id']})"
            + (" final" if c.get("final") else "")
        ),
        key="ck_checkpoint",
    )
    return int(chosen["id"])


def _samples(conn: Conn, checkpoint_id: int, tasks: list[str]) -> None:
    st.subheader("Samples")
    c1, c2, c3 = st.columns([3, 2, 2])
    task = c1.selectbox("Task", tasks, key="ck_task")
    failing = c2.toggle("Failing only", value=task == "humaneval_plus", key=f"ck_failing_{task}")
    page = int(c3.number_input("Page", min_value=1, value=1, step=1, key="ck_page"))
    answer = get(conn, "samples", checkpoint_id, task, failing, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    items = answer.get("items", [])
    st.caption(f"{answer.get('total', len(items))} samples; page {page} shows {len(items)}.")
    if not items:
        st.info("No sample on this page.")
        return
    if task == "humaneval_plus":
        st.dataframe(code_failure_rows(items), hide_index=True, key="ck_code_samples")
    elif task == "math":
        st.dataframe(math_answer_rows(items), hide_index=True, key="ck_math_samples")
    else:
        rows = [
            {k: i.get(k) for k in ("doc_id", "sample_index", "correct", "score")} for i in items
        ]
        st.dataframe(rows, hide_index=True)
    for item in items[:10]:
        record = item.get("record") or {}
        with st.expander(md_text(f"{item.get('doc_id')} #{item.get('sample_index')}", True)):
            st.code(clip(record.get("completion"), 4000) or "(no completion recorded)")
            st.json(record, expanded=False)


def _analysis(analysis: dict | None) -> None:
    """The adapter analysis the worker stored with the checkpoint (none for the base)."""
    if analysis is None:
        return
    st.subheader("Adapter update")
    if analysis.get("reported"):
        st.caption(md_text(f"{analysis.get('kind')}: {analysis['reported']}"))
    if analysis.get("note"):
        st.info(md_text(analysis["note"]))
    rows = analysis_rows(analysis)
    if rows:
        st.dataframe(rows, hide_index=True, key="ck_analysis")


def checkpoint_line(checkpoint: dict) -> str:
    """Where the checkpoint is, its hash, and which API token registered it (plain text)."""
    line = f"uri {checkpoint.get('uri')} · sha256 {str(checkpoint.get('sha256'))[:16]}…"
    if checkpoint.get("registered_by"):
        line += f" · registered by {checkpoint['registered_by']}"
    return line


def render(conn: Conn) -> None:
    """Scores first (metric, value, and how the model was materialised), then samples."""
    checkpoint_id = _pick_checkpoint(conn)
    if checkpoint_id is None:
        return
    checkpoint = get(conn, "get_checkpoint", checkpoint_id)
    st.subheader(
        f"Checkpoint {checkpoint_id}: {md_text(checkpoint.get('run'), inline=True)} "
        f"epoch {checkpoint.get('epoch')}"
    )
    st.caption(md_text(checkpoint_line(checkpoint)))
    _analysis(checkpoint.get("analysis"))
    scores = checkpoint.get("scores", [])
    if not scores:
        jobs = checkpoint.get("jobs", [])
        states = ", ".join(f"{j['suite']}: {j['status']}" for j in jobs) or "no job"
        st.info(f"No score yet ({md_text(states)}).")
        return
    breakdowns = st.toggle("Show breakdowns (per subject / level)", key="ck_breakdowns")
    st.dataframe(score_rows(scores, breakdowns), hide_index=True, key="ck_scores")
    # the learning tasks first: their samples are what one browses (forgetting tasks have
    # multiple-choice rows, the aggregate none)
    tasks = sorted(
        {s["task"] for s in scores if s["task"] != forgetting().task},
        key=lambda t: (t not in {table.task for table in paper_tables().values()}, t),
    )
    if tasks:
        _samples(conn, checkpoint_id, tasks)
