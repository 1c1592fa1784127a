"""The adapter analysis stored with each checkpoint, shaped for the pages: a table per module
type on the checkpoint page, and one quantity over a run's epochs on the curves page (how the
update's norm and spectrum evolve during training).

Pure data work (no Streamlit) so the tests can check what is shown. The checkpoint's
``analysis`` is the API's (``GET /v1/runs/{run}`` gives it for every checkpoint): per module
type the numbers of ``ModuleTypeSummary`` (docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from evalsuite.dashboard.escape import plot_text

# display name -> ModuleTypeSummary field, in the order the pages offer them
QUANTITIES = {
    "mean Frobenius norm": "mean_frobenius",
    "max Frobenius norm": "max_frobenius",
    "Frobenius norm (all layers)": "frobenius",
    "spectral entropy rank (mean)": "mean_spectral_entropy_rank",
    "energy rank 90% (mean)": "mean_energy_rank_90",
    "RaSA shared-pool share (mean)": "mean_shared_fraction",
}


def analysis_rows(analysis: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per module type: the layers and every quantity (None where a kind has none)."""
    by_type = (analysis or {}).get("by_type") or {}
    return [
        {"module type": mtype, "layers": s.get("layers")}
        | {label: s.get(key) for label, key in QUANTITIES.items()}
        for mtype, s in sorted(by_type.items())
    ]


def module_types(checkpoints: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every module type some checkpoint of the runs has a summary for."""
    return sorted(
        {t for cks in checkpoints.values() for c in cks for t in _by_type(c)},
    )


def _by_type(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return (checkpoint.get("analysis") or {}).get("by_type") or {}


@dataclass(frozen=True)
class Line:
    """One run's quantity over its epochs (only the epochs whose checkpoint has it)."""

    run: str
    epochs: list[float]
    values: list[float]


def spectrum_lines(
    checkpoints: dict[str, list[dict[str, Any]]], mtype: str, quantity: str
) -> list[Line]:
    """Per run (``run -> its checkpoints``, as ``GET /v1/runs/{run}`` lists them), ``quantity``
    of module type ``mtype`` by epoch; runs with no such value are left out."""
    lines = []
    for run, cks in checkpoints.items():
        points = sorted(
            (float(c["epoch"]), _by_type(c)[mtype][quantity])
            for c in cks
            if mtype in _by_type(c) and _by_type(c)[mtype].get(quantity) is not None
        )
        if points:
            lines.append(Line(run, [e for e, _ in points], [float(v) for _, v in points]))
    return lines


def spectrum_figure(lines: list[Line], mtype: str, label: str) -> go.Figure:
    """A line per run of one quantity against epoch."""
    fig = go.Figure()
    for line in lines:
        name = plot_text(line.run)
        fig.add_trace(go.Scatter(x=line.epochs, y=line.values, mode="lines+markers", name=name))
    fig.update_layout(
        title=f"Adapter update: {label}, {mtype}",
        xaxis_title="epoch",
        yaxis_title=label,
        legend_title="run",
        height=380,
    )
    return fig
