"""The one-screen summary printed after an evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_summary(results: dict[str, Any], out: Path, console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    ckpt = results["checkpoint"]
    model = results["model"]
    title = f"{ckpt.get('kind')} {ckpt.get('path')}"
    if ckpt.get("epoch") is not None:
        title += f" (epoch {ckpt['epoch']:g}, step {ckpt.get('step')})"
    table = Table(title=title, caption=f"results in {out}")
    for column in ("task", "metric", "value", "stderr", "n", "docs"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    hidden = 0
    for name, task in results["tasks"].items():
        docs = f"{task['n_docs']}/{task['n_docs_total']}"
        for metric, m in task["metrics"].items():
            if "/" in metric:  # breakdowns (per subject, per level, statuses)
                hidden += 1
                continue
            stderr = f"{m['stderr']:.4f}" if m["stderr"] is not None else "-"
            table.add_row(name, metric, f"{m['value']:.4f}", stderr, str(m["n"]), docs)
    for name, agg in results.get("aggregates", {}).items():
        table.add_row(
            name,
            "mean of " + ", ".join(f"{t}:{m}" for t, m in agg["metrics"].items()),
            f"{agg['value']:.4f}",
            "-",
            str(len(agg["parts"])),
            "",
        )
    console.print(table)
    if hidden:
        console.print(f"(+{hidden} breakdown metrics in results.json)")
    engine = model["engine"]
    version = engine.get("version") or "(not started: every answer was cached)"
    console.print(
        f"engine {engine.get('name')} {version}, {model['materialization']}, "
        f"{model['dtype']}; {results['timings']['total_s']:.1f} s"
        + (
            " [bold yellow]PARTIAL (--limit): not comparable with full runs[/]"
            if results["partial"]
            else ""
        )
    )
