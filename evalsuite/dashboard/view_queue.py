"""Queue page: jobs by status, failures with their reasons, and a retry button each."""

from __future__ import annotations

import streamlit as st

from evalsuite.client import ApiError
from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.dashboard.escape import md_text
from evalsuite.dashboard.records import JOB_STATUSES, job_rows

JOB_LIMIT = 1000


def _retry(conn: Conn, job_id: int) -> None:
    """POST the retry with the sidebar's token; the outcome stays on screen after rerun."""
    try:
        with conn.reader() as reader:
            job = reader.retry(job_id)
    except ApiError as e:
        detail = md_text(e.detail)
        st.session_state["queue_message"] = ("error", f"Retry of job {job_id}: {detail}")
        return
    st.session_state["queue_message"] = ("success", f"Job {job_id} is {job['status']} again.")
    st.cache_data.clear()


def failure_heading(job: dict) -> str:
    """One failed job's line (Markdown, its run and suite escaped)."""
    return (
        f"Job {job['id']} · {md_text(job.get('run'), inline=True)} epoch {job.get('epoch')} · "
        f"suite {md_text(job.get('suite'), inline=True)} · "
        f"{job.get('attempts')}/{job.get('max_attempts')} attempts"
    )


def render(conn: Conn) -> None:
    """Counts, then the failures (with retry), then the jobs of the chosen status.

    One read per status, each capped at ``JOB_LIMIT`` (the API has no count endpoint and
    lists 100 jobs by default), so a capped count shows as "1000+".
    """
    by_status = {s: get(conn, "list_jobs", s, None, JOB_LIMIT) for s in JOB_STATUSES}
    message = st.session_state.pop("queue_message", None)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])
    if not any(by_status.values()):
        empty_state(conn.url, "jobs")
        return
    for column, (status, jobs) in zip(
        st.columns(len(JOB_STATUSES)), by_status.items(), strict=True
    ):
        column.metric(status, f"{len(jobs)}+" if len(jobs) >= JOB_LIMIT else len(jobs))
    failed = by_status["FAILED"]
    if failed:
        st.subheader("Failures")
        if not conn.token:
            st.warning(
                "Retrying needs the API token: set EVALSUITE_API_TOKEN or the sidebar field."
            )
        for job in failed:
            c1, c2 = st.columns([6, 1])
            c1.error(failure_heading(job))
            # the reason as written (a traceback, a scorer's output): a code block, not Markdown
            c1.code(job.get("error") or "(no reason recorded)", language="text")
            c2.button(
                "Retry",
                key=f"retry-{job['id']}",
                disabled=not conn.token,
                on_click=_retry,
                args=(conn, job["id"]),
            )
    status = st.selectbox("Status", ["all", *JOB_STATUSES], key="q_status")
    shown = [j for s, jobs in by_status.items() if status in ("all", s) for j in jobs]
    st.dataframe(job_rows(shown), hide_index=True, key="q_jobs")
