"""``evalsuite compare A B``: which documents flipped between two checkpoints, and the paired
difference with the gate's bootstrap interval."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from evalsuite.errors import EvalsuiteError
from evalsuite.gate.compare import GateSettings
from evalsuite.settings import get_settings

SHOWN = 20  # flipped documents listed per direction in the text view (--json lists all)


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _doc_line(item: dict[str, Any]) -> str:
    metrics = item["a"].keys()
    values = ", ".join(f"{m} {_value(item['a'][m])} -> {_value(item['b'][m])}" for m in metrics)
    return f"  - {item['doc_id']}: {values}"


def to_text(report: dict[str, Any]) -> str:
    """Per task: counts, each metric's difference in points with its interval, the flips."""
    ci = f"{100 * (1 - 2 * report['settings']['alpha']):g}% CI"
    lines = [f"compare a = {report['a']}  ->  b = {report['b']}", ""]
    lines += [f"cannot compare: {r}" for r in report["reasons"]]
    for t in report["tasks"]:
        if t["reason"]:
            lines += [f"## {t['task']}: cannot compare: {t['reason']}", ""]
            continue
        c = t["counts"]
        lines.append(
            f"## {t['task']} ({t['n_docs']} documents, flips by {t['flip_metric']}): "
            f"lost {c['lost']}, gained {c['gained']}, both solved {c['both_solved']}, "
            f"both failed {c['both_failed']}"
        )
        for m in t["metrics"]:
            p = m["points"]
            if p is None:
                lines.append(f"- {m['metric']}: cannot compare: {m['reason']}")
                continue
            lines.append(
                f"- {m['metric']}: a {p['baseline']:.2f}, b {p['candidate']:.2f}, "
                f"b - a {p['diff']:+.2f} points, {ci} [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]"
            )
        for direction in ("lost", "gained"):
            items = t[direction]
            if items:
                more = f" (first {SHOWN}; --json lists all)" if len(items) > SHOWN else ""
                lines.append(
                    f"{direction} (solved by {'a' if direction == 'lost' else 'b'}){more}:"
                )
                lines += [_doc_line(i) for i in items[:SHOWN]]
        lines.append("")
    return "\n".join(lines) + "\n"


def refused(report: dict[str, Any]) -> bool:
    """Anything that could not be compared (exit code 2, as the gate's cannot-decide)."""
    return bool(report["reasons"]) or any(t["reason"] for t in report["tasks"])


def compare_command(
    a: Annotated[
        str,
        typer.Argument(
            help="Checkpoint id, RUN, RUN@best, RUN@last, RUN@EPOCH or a results directory."
        ),
    ],
    b: Annotated[str, typer.Argument(help="The other side, compared as b - a.")],
    task: Annotated[
        list[str] | None, typer.Option(help="Only this task (repeatable); default: all common.")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(help="Service URL for ids and RUN refs (default: $EVALSUITE_API_URL)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Bearer token for reads (default: $EVALSUITE_API_TOKEN).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="One-sided level of each interval bound.")] = 0.05,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Per task: the documents that flipped between a and b (solved -> failed, failed ->
    solved) with their values, and b - a with the gate's paired bootstrap interval.

    Exit 0: compared; 2: something could not be compared (different data, prompt, sampling,
    materialisation, partial runs, different documents: the gate's refusals).
    """
    from evalsuite.client import ApiClient
    from evalsuite.compare.flips import compare, empty_report
    from evalsuite.compare.sources import open_side

    if not 0 < alpha < 0.5 or n_boot < 1:
        raise typer.BadParameter("need 0 < --alpha < 0.5 and --n-boot >= 1")
    settings = GateSettings(alpha=alpha, n_boot=n_boot, seed=seed)
    url = api or get_settings().api_url
    client = ApiClient(url, token=token or get_settings().api_token) if url else None
    try:
        report = compare(open_side(a, "a", client), open_side(b, "b", client), task, settings)
    except EvalsuiteError as e:
        report = empty_report(a, b, settings, str(e))
    finally:
        if client is not None:
            client.close()
    typer.echo(json.dumps(report, indent=2) if as_json else to_text(report), nl=False)
    raise typer.Exit(2 if refused(report) else 0)


def register(app: typer.Typer) -> None:
    """Mount ``evalsuite compare`` on the CLI."""
    app.command("compare")(compare_command)
