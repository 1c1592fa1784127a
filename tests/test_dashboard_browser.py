"""Headless Chromium (Debian's /usr/bin/chromium, driven by playwright) on the running app:
``evalsuite dashboard`` serves it, the leaderboard shows Table 1 with the seeded values."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("evalsuite.api.app", reason="the results API (evalsuite.api) is not there")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from evalsuite.testing.dashboard_seed import LLAMA, known_runs, live_api, live_dashboard, seed  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def cell(run: str, base: str, column: str) -> str:
    return (
        f'table.evalsuite-leaderboard td[data-run="{run}"][data-base="{base}"][data-col="{column}"]'
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium")
def test_browser_shows_table1(tmp_path):
    with live_api(tmp_path / "results.db") as api:
        seed(api, known_runs())
        with live_dashboard(api) as url:
            with playwright.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(url, wait_until="domcontentloaded")
                best = page.locator(cell("llama-rasa-r32", LLAMA, "pass@1_best"))
                best.wait_for(timeout=60_000)
                assert best.inner_html() == "<b>59.5</b>"
                assert page.locator(cell("llama-rasa-r8", LLAMA, "pass@1_best")).inner_html() == (
                    "<i>57.9</i>"
                )
                assert page.locator(cell("llama-lora-r8", LLAMA, "pass@10_last")).inner_text() == (
                    "68.5"
                )
                assert page.get_by_text("Table 1: code (HumanEval+)").count() >= 1
                shot = tmp_path / "leaderboard.png"
                page.screenshot(path=str(shot), full_page=True)
                browser.close()
            assert shot.stat().st_size > 10_000
