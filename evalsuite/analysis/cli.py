"""``evalsuite adapter analyze`` (and ``reconstruct``): what a checkpoint's updates look like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalsuite.analysis.defaults import DEFAULT_ITERATIONS, DEFAULT_TOL, DEFAULT_TOP

BaseOption = Annotated[
    Path | None,
    typer.Option(
        help="Base model directory: needed for VeRA (shapes), MoRA (shapes), DoRA and full "
        "fine-tunes (weights)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def analyze_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="Checkpoint directory (adapter or full model), or a training run's directory "
            "(every checkpoint-<step> in it, in training order)."
        ),
    ],
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
    from evalsuite.analysis.analyze import analyze, analyze_run, is_run_dir

    if is_run_dir(path):
        run = analyze_run(path, base, top or None)
        if as_json:
            typer.echo(json.dumps(run))
            return
        _run_table(run)
        return
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


def _run_table(run: dict) -> None:
    """One row per module type and checkpoint: the spectrum's evolution over training."""
    table = Table(title=f"{run['run']}: per module type, mean over layers, by epoch")
    widest = max((len(t) for c in run["checkpoints"] for t in c["by_type"]), default=4)
    table.add_column("type", min_width=widest, no_wrap=True)
    for column in ("epoch", "frobenius", "entropy rank", "90% energy rank"):
        table.add_column(column, justify="right")
    types = sorted({t for c in run["checkpoints"] for t in c["by_type"]})
    for mtype in types:
        for c in run["checkpoints"]:
            s = c["by_type"].get(mtype)
            if s is None:
                continue
            epoch = "-" if c["epoch"] is None else f"{c['epoch']:g}"
            table.add_row(
                mtype,
                epoch,
                f"{s['frobenius']:.4g}",
                f"{s['mean_spectral_entropy_rank']:.2f}",
                f"{s['mean_energy_rank_90']:.2f}",
            )
    Console().print(table)


def _ks(text: str | None, r: int) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; default: 0 (LoRA) and the paper's k = max(r/8, 1)."""
    if not text:
        return sorted({0, max(r // 8, 1)})
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k wants integers separated by commas, got {text!r}") from None
    if not ks or ks[0] < 0 or ks[-1] > r:
        raise typer.BadParameter(f"every k must be within 0..r={r}, got {text!r}")
    return ks


def reconstruct_command(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory (adapter or full model).")],
    r: Annotated[int, typer.Option("--r", min=1, help="Rank of the LoRA / RaSA structure.")] = 8,
    k: Annotated[
        str | None,
        typer.Option(
            "--k", help="Shared ranks per layer, comma-separated (default: 0,max(r/8,1))."
        ),
    ] = None,
    base: BaseOption = None,
    module_type: Annotated[
        list[str] | None, typer.Option("--type", help="Module type, e.g. mlp.up_proj (repeatable).")
    ] = None,
    iterations: Annotated[
        int, typer.Option(min=0, help="Most coordinate-descent iterations per k.")
    ] = DEFAULT_ITERATIONS,
    tol: Annotated[
        float,
        typer.Option(
            help="Stop when an iteration lowers the error by less than this "
            "share of the updates' energy."
        ),
    ] = DEFAULT_TOL,
    max_rank: Annotated[
        int | None,
        typer.Option(
            help="Keep each update's leading components only (for large dense "
            "updates); errors are then against the cut updates and the cut energy is reported."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """How well can LoRA (rank r) and RaSA (r, k) reconstruct this checkpoint's updates?

    Per module type, across its layers: LoRA's minimum error (Eckart-Young) and RaSA's by
    coordinate descent (the RaSA paper, Appendix A), per iteration and per k. Meant for
    high-rank updates (a full fine-tune or DoRA against --base, MoRA); a LoRA of rank <= r is
    reconstructed exactly by both.
    """
    from evalsuite.analysis.reconstruct import reconstruct

    ks = _ks(k, r)
    report = reconstruct(path, r, ks, base, module_type, iterations, tol, max_rank)
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"{path} ({report['kind']}): relative reconstruction error at r={r}")
    widest = max((len(t) for t in report["types"]), default=4)
    table.add_column("type", min_width=widest, no_wrap=True)
    table.add_column("layers", justify="right")
    table.add_column("LoRA", justify="right")
    for value in ks:
        table.add_column(f"RaSA k={value}", justify="right", no_wrap=True)
    for mtype, t in report["types"].items():
        cells = [f"{run['relative']:.4f} ({run['iterations']} it)" for run in t["rasa"]]
        table.add_row(mtype, str(t["layers"]), f"{t['lora_relative']:.4f}", *cells)
    Console().print(table)
    Console().print("error / squared Frobenius norm of the updates; --json gives every iteration")


def register(adapter_app: typer.Typer) -> None:
    """Mount the analysis commands under ``evalsuite adapter``."""
    adapter_app.command("analyze")(analyze_command)
    adapter_app.command("reconstruct")(reconstruct_command)
