"""``evalsuite adapter analyze`` (and ``reconstruct``): what a checkpoint's updates look like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalsuite.analysis.analyze import DEFAULT_TOP

BaseOption = Annotated[
    Path | None,
    typer.Option(
        help="Base model directory: needed for VeRA (shapes), MoRA (shapes), DoRA and full "
        "fine-tunes (weights)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def analyze_command(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory (adapter or full model).")],
    base: BaseOption = None,
    top: Annotated[
        int, typer.Option(help="Singular values listed per module in --json (0: all).")
    ] = DEFAULT_TOP,
    as_json: JsonOption = False,
) -> None:
    """Per module type and layer: the update's Frobenius norm, singular values, spectral
    effective rank (entropy) and the rank holding 90% of its energy; RaSA's D weights.

    Low-rank kinds (LoRA, rsLoRA, AdaLoRA, VeRA, RaSA) are computed exactly from their
    factors; DoRA, MoRA and full fine-tunes from the dense update, one module at a time.
    """
    from evalsuite.analysis.analyze import analyze

    report = analyze(path, base, top or None)
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"{path} ({report['kind']}): {report['reported']}")
    columns = ("type", "layers", "frobenius", "entropy rank", "90% energy rank", "numerical rank")
    widest = max((len(t) for t in report["by_type"]), default=4)
    table.add_column(columns[0], min_width=widest, no_wrap=True)  # names whole, never cut
    for column in columns[1:]:
        table.add_column(column, justify="right")
    shared = any("mean_shared_fraction" in s for s in report["by_type"].values())
    if shared:
        table.add_column("RaSA shared D share", justify="right")
    for mtype, s in report["by_type"].items():
        row = [
            mtype,
            str(s["layers"]),
            f"{s['frobenius']:.4g}",
            f"{s['mean_spectral_entropy_rank']:.2f}",
            f"{s['mean_energy_rank_90']:.2f}",
            f"{s['mean_numerical_rank']:.2f}",
        ]
        if shared:
            row.append(f"{s.get('mean_shared_fraction', 0.0):.3f}")
        table.add_row(*row)
    Console().print(table)
    Console().print("ranks are means over layers; --json gives every module")


def register(adapter_app: typer.Typer) -> None:
    """Mount the analysis commands under ``evalsuite adapter``."""
    adapter_app.command("analyze")(analyze_command)
