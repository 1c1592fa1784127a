"""In CI (``CI=true``) a skipped test is a failed test, unless its reason is allowed here.

A skip hides a broken install step as well as a missing database or data folder, and an
``importorskip`` turns an import bug into a skip. CI is meant to run every test, so it
fails instead, naming the reason; only what CI can never have is allowed.
"""

from __future__ import annotations

import os

import pytest

CI_MAY_SKIP = ("needs a GPU",)  # reasons a CI run may skip for: nothing else


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _reason(longrepr: object) -> str:
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _refuse(report: pytest.BaseReport) -> None:
    reason = _reason(report.longrepr)
    if any(allowed in reason for allowed in CI_MAY_SKIP):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI: {reason}\nCI must run this test; fix what it needs (install step, "
        f"service, data) or, if CI can never have it, add the reason to {__name__}.CI_MAY_SKIP"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _refuse(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped:  # a module skipped whole (importorskip at its top)
        _refuse(report)
