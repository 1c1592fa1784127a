"""The regression gate: is a candidate checkpoint significantly worse than a baseline?

Facade over ``evalsuite.gate.cli``: ``evidence`` (per-document values from the runner's sample
rows), ``results_dir`` and ``api_source`` (the two places results live), ``stats`` (paired
bootstrap and the decision rule), ``compare`` (refusals and the report) and ``report``
(Markdown, JUnit, JSON). The CLI command and ``POST /v1/gate`` both call ``gate()``.

Exit codes: 0 pass, 1 regression, 2 cannot decide (unlike settings, partial runs, different
documents, missing inputs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.errors import EvalsuiteError
from evalsuite.gate.api_source import ApiSource, Reader, parse_ref, wait_for_jobs
from evalsuite.gate.compare import GateReport, GateSettings, run_gate
from evalsuite.gate.evidence import GateInputError, Source, default_checks, primary_metrics
from evalsuite.gate.report import to_json, to_markdown, write_outputs
from evalsuite.gate.results_dir import ResultsDirSource
from evalsuite.settings import get_settings

__all__ = [
    "ApiSource",
    "GateInputError",
    "GateReport",
    "GateSettings",
    "ResultsDirSource",
    "gate",
    "register",
    "select_checks",
]


def select_checks(
    candidate: Source, baseline: Source, tasks: list[str] | None, metrics: list[str] | None
) -> list[tuple[str, str]] | None:
    """``--task T --metric M`` pairs; tasks alone: their default metrics; nothing: None (the
    defaults of every common task, chosen by ``run_gate``)."""
    tasks, metrics = tasks or [], metrics or []
    if metrics:
        if len(metrics) != len(tasks):
            raise GateInputError(
                f"give --task and --metric in pairs ({len(tasks)} --task, {len(metrics)} "
                "--metric), or --task alone for its default metrics"
            )
        return list(zip(tasks, metrics, strict=True))
    if not tasks:
        return None
    common = default_checks(candidate.tasks(), baseline.tasks())
    checks = [(t, m) for t, m in common if t in tasks]
    for task in tasks:
        if not any(t == task for t, _ in checks):  # still a check, so the refusal is reported
            checks += [(task, m) for m in primary_metrics(task) or ("?",)]
    return checks


def gate(
    candidate: Source,
    baseline: Source,
    tasks: list[str] | None = None,
    metrics: list[str] | None = None,
    settings: GateSettings | None = None,
) -> GateReport:
    """Run the gate; every refusal ends up in the report (status ``cannot_decide``)."""
    settings = settings or GateSettings()
    try:
        checks = select_checks(candidate, baseline, tasks, metrics)
    except EvalsuiteError as e:
        return GateReport(candidate.name, baseline.name, settings, [], [str(e)])
    return run_gate(candidate, baseline, checks, settings)


def _open_source(label: str, results: Path | None, ref: str | None, api: Reader | None) -> Source:
    if (results is None) == (ref is None):
        raise GateInputError(f"give exactly one of --{label} RUN[@sel] or --{label}-results DIR")
    if results is not None:
        return ResultsDirSource(results, label)
    if api is None:
        raise GateInputError(f"--{label} {ref} names a run: give --api URL (or EVALSUITE_API_URL)")
    return ApiSource(api, ref, label)


def gate_command(
    candidate: Annotated[
        str | None, typer.Option(help="Run in the service: RUN, RUN@last, RUN@best or RUN@EPOCH.")
    ] = None,
    candidate_results: Annotated[
        Path | None, typer.Option(help="Results directory of the candidate (evalsuite eval).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Baseline run: RUN[@sel].")] = None,
    baseline_results: Annotated[
        Path | None, typer.Option(help="Results directory of the baseline.")
    ] = None,
    api: Annotated[
        str | None, typer.Option(help="Service URL for RUN refs (default: $EVALSUITE_API_URL).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token for reads (default: $EVALSUITE_API_TOKEN).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option(help="Task to gate; pair with --metric, repeatable.")
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Metric of the --task before.")] = None,
    max_drop: Annotated[
        float, typer.Option(help="Tolerated drop in points (percentage points).")
    ] = 1.0,
    alpha: Annotated[float, typer.Option(help="One-sided significance level.")] = 0.05,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for the candidate run's jobs to finish (API mode)."),
    ] = 0.0,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Fail CI when a checkpoint is significantly worse than a baseline, problem by problem.

    Exit 0: pass; 1: regression (drop > --max-drop points and significant at --alpha);
    2: cannot decide (different data, prompt, sampling, materialisation, partial runs, ...).
    """
    if not 0 < alpha < 0.5 or n_boot < 1 or max_drop < 0:
        raise typer.BadParameter("need 0 < --alpha < 0.5, --n-boot >= 1 and --max-drop >= 0")
    settings = GateSettings(max_drop=max_drop, alpha=alpha, n_boot=n_boot, seed=seed)
    from evalsuite.client import ApiClient

    api = api or get_settings().api_url
    token = token or get_settings().api_token

    client = ApiClient(api, token=token) if api else None
    try:
        if wait > 0 and candidate and client is not None:
            wait_for_jobs(client, parse_ref(candidate)[0], wait)
        cand = _open_source("candidate", candidate_results, candidate, client)
        base = _open_source("baseline", baseline_results, baseline, client)
        report = gate(cand, base, task, metric, settings)
    except EvalsuiteError as e:  # GateInputError, or the service's ApiError
        cand_label = candidate or str(candidate_results)
        base_label = baseline or str(baseline_results)
        report = GateReport(cand_label, base_label, settings, [], [str(e)])
    finally:
        if client is not None:
            client.close()
    write_outputs(report, junit, os.environ.get("GITHUB_STEP_SUMMARY"))
    typer.echo(to_json(report) if as_json else to_markdown(report), nl=False)
    raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Mount ``evalsuite gate`` on the CLI."""
    app.command("gate")(gate_command)
