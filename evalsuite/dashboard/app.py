"""The Streamlit app: sidebar (API URL, token, page), health check, then one page.

Pages are chosen with a sidebar radio (deep links: ``?page=curves``), not Streamlit's
multipage folders, so the same script runs from a checkout (``dashboard/app.py``) and from an
installed wheel (``evalsuite/dashboard/streamlit_app.py``).
"""

from __future__ import annotations

import argparse
import sys

import streamlit as st

from evalsuite.client import ApiError
from evalsuite.dashboard.data import Conn, get, guarded, show_api_error
from evalsuite.dashboard.escape import md_text
from evalsuite.settings import get_settings

PAGES = {
    "leaderboard": "Leaderboard",
    "curves": "Curves",
    "checkpoint": "Checkpoint",
    "compare": "Compare",
    "queue": "Queue",
}
# page -> its module, imported lazily: the leaderboard's first paint need not load plotly
PAGE_MODULES = {name: f"evalsuite.dashboard.view_{name}" for name in PAGES}


def api_url_from_argv(argv: list[str] | None = None) -> str:
    """``--api URL`` after ``streamlit run app.py --``, else ``EVALSUITE_API_URL``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--api", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.api or get_settings().client_api_url


def _sidebar() -> tuple[Conn, str]:
    st.sidebar.title("evalsuite")
    url = st.sidebar.text_input("API URL", value=api_url_from_argv()).strip()
    token = st.sidebar.text_input(
        "API token (for retries)",
        value=get_settings().api_token or "",
        type="password",
        help="Writes need a bearer token; defaults to EVALSUITE_API_TOKEN.",
    )
    keys = list(PAGES)
    wanted = st.query_params.get("page", "leaderboard")
    page = st.sidebar.radio(
        "Page",
        keys,
        index=keys.index(wanted) if wanted in keys else 0,
        format_func=PAGES.__getitem__,
        key="page",
    )
    if st.sidebar.button("Refresh data", help="Reads are cached for 30 s; fetch them again now."):
        st.cache_data.clear()
    return Conn(url=url, token=token or None), page


def _page(name: str):
    """Import a page's module when it is shown (``PAGE_MODULES``) and return its render."""
    import importlib

    return importlib.import_module(PAGE_MODULES.get(name, PAGE_MODULES["leaderboard"])).render


def main() -> None:
    """One rerun of the app."""
    st.set_page_config(page_title="evalsuite", layout="wide")
    conn, page = _sidebar()
    try:
        health = get(conn, "health")
    except ApiError as e:
        show_api_error(conn.url, e)
        return
    facts = [health.get(key, "?") for key in ("version", "database", "pending_jobs")]
    st.sidebar.caption(md_text(f"API {facts[0]} · {facts[1]} · {facts[2]} pending jobs", True))
    guarded(conn, _page(page))
