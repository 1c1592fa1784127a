"""The gate's report for people (Markdown), CI test views (JUnit XML) and programs (JSON)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from evalsuite.gate.compare import CANNOT_DECIDE, REGRESSION, CheckResult, GateReport

_HEADLINE = {
    "pass": "PASS: no significant drop beyond the tolerance",
    "regression": "REGRESSION: the candidate is significantly worse",
    "cannot_decide": "CANNOT DECIDE: the two sides cannot be compared",
}


def _points(value: float) -> str:
    return f"{100 * value:.2f}"


def _signed(value: float) -> str:
    return f"{100 * value:+.2f}"


def to_markdown(report: GateReport) -> str:
    """A table per check with the plain difference and the bootstrap bounds, in points."""
    s = report.settings
    ci = f"{100 * (1 - 2 * s.alpha):g}% CI"
    lines = [
        f"### evalsuite gate: {_HEADLINE[report.status]}",
        "",
        f"candidate `{report.candidate}` vs baseline `{report.baseline}`; fails when the drop "
        f"is > {s.max_drop:g} points and the upper one-sided {100 * (1 - s.alpha):g}% bound "
        f"is < 0 (paired bootstrap, {s.n_boot} resamples, seed {s.seed})",
        "",
        f"| task | metric | docs | baseline | candidate | diff (pts) | {ci} | p | result |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for c in report.checks:
        r = c.result
        if r is None:
            lines.append(f"| {c.task} | {c.metric} | | | | | | | {c.status} |")
            continue
        lines.append(
            f"| {c.task} | {c.metric} | {r.n} | {_points(r.baseline)} | {_points(r.candidate)} "
            f"| {_signed(r.diff)} | [{_signed(r.ci_low)}, {_signed(r.ci_high)}] "
            f"| {r.p_value:.3f} | {'**regression**' if c.status == REGRESSION else c.status} |"
        )
    reasons = report.all_reasons()
    if reasons:
        lines += ["", "**Cannot decide:**", *(f"- {reason}" for reason in reasons)]
    return "\n".join(lines) + "\n"


def to_json(report: GateReport) -> str:
    return json.dumps(report.as_dict(), indent=2)


def _testcase(suite: ET.Element, check: CheckResult) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=f"evalsuite.gate.{check.task}", name=check.metric
    )
    r = check.result
    if check.status == REGRESSION and r is not None:
        failure = ET.SubElement(
            case,
            "failure",
            type="regression",
            message=f"{check.task}/{check.metric} dropped {-100 * r.diff:.2f} points "
            f"(upper bound {100 * r.ci_high:+.2f})",
        )
        failure.text = json.dumps(check.as_dict(), indent=2)
    elif check.status == CANNOT_DECIDE:
        error = ET.SubElement(case, "error", type="cannot_decide", message=check.reason or "")
        error.text = check.reason
    elif r is not None:
        out = ET.SubElement(case, "system-out")
        out.text = f"diff {100 * r.diff:+.2f} points, upper bound {100 * r.ci_high:+.2f}"


def to_junit(report: GateReport) -> str:
    """One testcase per check; refusals that concern no single check are one more error."""
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="evalsuite-gate")
    for check in report.checks:
        _testcase(suite, check)
    general = report.general_reasons()
    if general:
        case = ET.SubElement(suite, "testcase", classname="evalsuite.gate", name="comparability")
        ET.SubElement(
            case, "error", type="cannot_decide", message="; ".join(general)
        ).text = "\n".join(general)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_outputs(report: GateReport, junit: Path | None, step_summary: str | None) -> None:
    """JUnit file and the GitHub step summary (appended, as GitHub expects)."""
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit(report))
    if step_summary:
        with open(step_summary, "a") as f:
            f.write(to_markdown(report) + "\n")
