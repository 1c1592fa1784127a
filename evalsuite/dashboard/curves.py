"""Learning and forgetting curves: ``GET /v1/curves`` answers shaped into plotly figures.

Pure data work (no Streamlit) so the tests can check what is plotted: one line per run,
epochs in order, and the BEST epoch marked. On the forgetting plot the marker sits at the
run's BEST epoch of the learning metric (the checkpoint one would keep), which is what a
reader of "learns more, forgets less" wants to see, not the epoch that forgets least.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go


@dataclass(frozen=True)
class Series:
    """One run's curve; ``best_epoch`` None when the run has no point yet."""

    run: str
    epochs: list[float]
    values: list[float]
    best_epoch: float | None

    def value_at(self, epoch: float | None) -> float | None:
        """The value at an epoch, None where the curve has no point there."""
        for e, v in zip(self.epochs, self.values, strict=True):
            if e == epoch:
                return v
        return None


def best_epoch_of(epochs: list[float], values: list[float]) -> float | None:
    """BEST as the API defines it: the maximum, ties to the earlier epoch."""
    best: tuple[float, float] | None = None
    for e, v in sorted(zip(epochs, values, strict=True)):
        if best is None or v > best[1]:
            best = (e, v)
    return None if best is None else best[0]


def series_from_curves(curves: list[dict[str, Any]]) -> list[Series]:
    """Points sorted by epoch (null values dropped); the API's best_epoch is kept, else computed."""
    out = []
    for curve in curves:
        points = sorted(
            (p for p in curve.get("points", []) if p.get("value") is not None),
            key=lambda p: p["epoch"],
        )
        epochs = [float(p["epoch"]) for p in points]
        values = [float(p["value"]) for p in points]
        best = curve.get("best_epoch")
        out.append(
            Series(
                run=curve["run"],
                epochs=epochs,
                values=values,
                best_epoch=float(best) if best is not None else best_epoch_of(epochs, values),
            )
        )
    return out


def curve_figure(
    series: list[Series],
    title: str,
    y_label: str,
    best_from: dict[str, float | None] | None = None,
) -> go.Figure:
    """Lines per run plus a star at each run's BEST epoch (``best_from`` overrides which
    epoch, e.g. the learning metric's BEST on the forgetting plot). Scores in percent."""
    fig = go.Figure()
    for s in series:
        fig.add_trace(
            go.Scatter(
                x=s.epochs,
                y=[100 * v for v in s.values],
                mode="lines+markers",
                name=s.run,
                legendgroup=s.run,
            )
        )
        best = best_from.get(s.run) if best_from is not None else s.best_epoch
        value = s.value_at(best)
        if value is not None:
            fig.add_trace(
                go.Scatter(
                    x=[best],
                    y=[100 * value],
                    mode="markers",
                    marker={"symbol": "star", "size": 14},
                    name=f"{s.run} BEST (epoch {best:g})",
                    legendgroup=s.run,
                    showlegend=False,
                    hovertemplate=f"{s.run}: BEST epoch {best:g}, %{{y:.1f}}<extra></extra>",
                )
            )
    fig.update_layout(
        title=title, xaxis_title="epoch", yaxis_title=y_label, legend_title="run", height=420
    )
    return fig
