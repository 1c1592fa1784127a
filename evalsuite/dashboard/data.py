"""Cached API reads for the pages, and the banners for an API that is down or refuses.

Reads are cached for a short while (``TTL_S``) keyed by URL, token and arguments, so moving
between pages and filters does not refetch; the sidebar's Refresh clears the cache. Errors
are never cached (Streamlit does not cache a raising call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from evalsuite.client import ApiClient, ApiError
from evalsuite.dashboard.escape import md_text

TTL_S = 30
TIMEOUT_S = 10.0  # a page waits no longer than this for the API


@dataclass(frozen=True)
class Conn:
    """Where the API is and the token for writes (and for reads when the API requires it)."""

    url: str
    token: str | None = None

    def reader(self) -> ApiClient:
        return ApiClient(self.url, self.token, timeout=TIMEOUT_S)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def fetch(url: str, token: str | None, call: str, *args: Any) -> Any:
    """``ApiClient.<call>(*args)`` against ``url``, cached."""
    with ApiClient(url, token, timeout=TIMEOUT_S) as client:
        return getattr(client, call)(*args)


def get(conn: Conn, call: str, *args: Any) -> Any:
    """A cached read through ``conn``."""
    return fetch(conn.url, conn.token, call, *args)


def unreachable_banner(url: str, error: Exception) -> None:
    """What to do when nothing answers: start the API or point the dashboard elsewhere."""
    st.error(
        f"**The results API is not reachable at {url}.**\n\n"
        "Start it (`evalsuite db upgrade && evalsuite api --port 8000`, or the docker "
        "compose service `api`) or point the dashboard at the right address with "
        "`evalsuite dashboard --api URL`, `EVALSUITE_API_URL`, or the API URL field in the "
        f"sidebar.\n\nDetail: {md_text(error)}"
    )


def show_api_error(url: str, error: ApiError) -> None:
    """Nothing answered (no status): how to reach the API; else the service's explanation."""
    if error.status is None:
        unreachable_banner(url, error)
    else:
        st.error(f"The results API at {url} answered {error.status}: {md_text(error.detail)}")


def guarded(conn: Conn, page: Any) -> None:
    """Run a page; an unreachable API or an API error becomes a banner, never a traceback."""
    try:
        page(conn)
    except ApiError as e:
        show_api_error(conn.url, e)


def submit_instructions(url: str, domain: str = "code") -> str:
    """The curl calls that put a first checkpoint on the queue (shown on an empty page)."""
    return f"""\
# 1. register the training run (once)
curl -X POST {url}/v1/runs \\
  -H "Authorization: Bearer $EVALSUITE_API_TOKEN" -H "Content-Type: application/json" \\
  -d '{{"name": "llama-rasa-r8", "method": "rasa", "r": 8, "k": 2, "alpha": 16,
       "domain": "{domain}", "base_model": "Llama-3.1-8B",
       "base_model_path": "meta-llama/Llama-3.1-8B", "trainable_params": 21000000}}'

# 2. register each epoch's checkpoint: this queues its evaluation jobs
curl -X POST {url}/v1/runs/llama-rasa-r8/checkpoints \\
  -H "Authorization: Bearer $EVALSUITE_API_TOKEN" -H "Content-Type: application/json" \\
  -d '{{"epoch": 1, "step": 500, "uri": "/checkpoints/llama-rasa-r8/checkpoint-500",
       "sha256": "<sha256 of the adapter files>", "final": false}}'
"""


def empty_state(url: str, what: str, domain: str = "code") -> None:
    """An empty database is a first step, not an error: say how to submit a checkpoint."""
    st.info(
        f"**No {what} yet.** Results appear here once a checkpoint has been registered "
        "with the API and a worker has evaluated it. Register a run and its checkpoints "
        "like this (the token is the API's `EVALSUITE_API_TOKEN`); see docs/api.md:"
    )
    st.code(submit_instructions(url, domain), language="bash")
