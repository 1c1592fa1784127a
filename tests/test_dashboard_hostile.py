"""Hostile names through the real API and the real pages (Streamlit's AppTest): the strings a
token holder chooses (run and base model names, URIs, failure reasons) reach the page as
text, never as Markdown (links, images, emphasis) or HTML.

AppTest gives each element's source: the Markdown Streamlit would render. A link or image
appears there only as ``[text](target)`` with unescaped brackets, so the assertions look for
the raw hostile strings and find only their escaped forms.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from evalsuite.dashboard.escape import md_text
from evalsuite.settings import get_settings
from evalsuite.testing.dashboard_seed import TOKEN, live_api

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# a run name is one URL path segment (no '/'): a link to a javascript: target and a tag
RUN = "**team** [notes](javascript:alert(1)) <img src=x onerror=alert(1)>"
BASE = "**bold** [x](http://evil)"
URI = "s3://bucket/![pixel](http://evil/track.png)"
REASON = "OOM ![pixel](http://evil/track.png)\n# not a heading\n[click](http://evil)"
RAW = ("[notes](", "[x](", "![pixel](", "[click](", "<img", "**team**", "**bold**")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[str, int]:
    """The API with one hostile run whose only job failed; (url, checkpoint id)."""
    with live_api(tmp_path_factory.mktemp("hostile") / "results.db") as url:
        run = {"name": RUN, "method": "lora", "r": 8, "domain": "code", "base_model": BASE}
        assert httpx.post(f"{url}/v1/runs", json=run, headers=AUTH).status_code == 201
        body = {"epoch": 1, "uri": URI, "sha256": "ab" * 32, "suites": ["code"]}
        made = httpx.post(f"{url}/v1/runs/{RUN}/checkpoints", json=body, headers=AUTH).json()
        job = httpx.post(f"{url}/v1/jobs/claim", json={"worker_id": "w"}, headers=AUTH).json()
        failed = httpx.post(
            f"{url}/v1/jobs/{job['id']}/fail",
            json={"worker_id": "w", "error": REASON},
            headers=AUTH,
        )
        assert failed.json()["status"] == "FAILED"
        yield url, made["checkpoint"]["id"]


def page(monkeypatch, url: str, name: str, **params: str) -> AppTest:
    monkeypatch.setenv("EVALSUITE_API_URL", url)
    monkeypatch.delenv("EVALSUITE_API_TOKEN", raising=False)
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["page"] = name
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_sources(at: AppTest) -> list[str]:
    """Every element whose text Streamlit renders as Markdown."""
    kinds = (at.markdown, at.caption, at.subheader, at.info, at.error, at.warning, at.success)
    return [str(element.value) for kind in kinds for element in kind]


def assert_text_only(sources: list[str]) -> None:
    """No hostile construct is there unless its opening character is backslash-escaped."""
    for source in sources:
        for raw in RAW:
            assert not re.search(r"(?<!\\)" + re.escape(raw), source), (raw, source)


def test_checkpoint_page_shows_names_and_uri_as_text(monkeypatch, seeded):
    url, checkpoint_id = seeded
    at = page(monkeypatch, url, "checkpoint", checkpoint=str(checkpoint_id))
    sources = markdown_sources(at)
    assert_text_only(sources)
    assert any(md_text(RUN, inline=True) in s for s in at.subheader.values), at.subheader.values
    assert any(md_text(URI) in c for c in at.caption.values), at.caption.values
    assert any(f"registered by {md_text('sha256:')}" in c for c in at.caption.values)


def test_queue_page_shows_the_run_and_the_failure_reason_as_text(monkeypatch, seeded):
    url, _ = seeded
    at = page(monkeypatch, url, "queue")
    assert_text_only(markdown_sources(at))
    assert any(md_text(RUN, inline=True) in e for e in at.error.values), at.error.values
    assert REASON in [c.value for c in at.code]  # as written, in a code block


def test_checkpoint_picker_with_a_hostile_run(monkeypatch, seeded):
    url, _ = seeded
    at = page(monkeypatch, url, "checkpoint")
    assert at.selectbox(key="ck_run").value == RUN  # options are plain text already
    assert_text_only(markdown_sources(at))
