"""Learning and forgetting curves: ``GET /v1/curves`` answers shaped into plotly figures.

Pure data work (no Streamlit) so the tests can check what is plotted: one line per run,
epochs in order, the BEST epoch marked, a band of +-1.96 stored stderr around each point that
has one (a normal 95% interval), and optionally the epochs where two runs differ
significantly under the gate's paired bootstrap (``GET /v1/compare`` per epoch). On the
forgetting plot the BEST marker sits at the run's BEST epoch of the learning metric (the
checkpoint one would keep), which is what a reader of "learns more, forgets less" wants to
see, not the epoch that forgets least.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from evalsuite.base_epoch import is_trained
from evalsuite.dashboard.escape import plot_text
from evalsuite.dashboard.table import INTERVAL_Z


@dataclass(frozen=True)
class Series:
    """One run's curve; ``best_epoch`` None when the run has no point yet."""

    run: str
    epochs: list[float]
    values: list[float]
    best_epoch: float | None
    stderrs: list[float | None] | None = None  # per point; None: no stderr stored

    def value_at(self, epoch: float | None) -> float | None:
        """The value at an epoch, None where the curve has no point there."""
        for e, v in zip(self.epochs, self.values, strict=True):
            if e == epoch:
                return v
        return None


def best_epoch_of(epochs: list[float], values: list[float]) -> float | None:
    """BEST as the API defines it: the maximum, ties to the earlier epoch, never the base's
    epoch 0."""
    best: tuple[float, float] | None = None
    for e, v in sorted(zip(epochs, values, strict=True)):
        if is_trained(e) and (best is None or v > best[1]):
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
        stderrs = [None if p.get("stderr") is None else float(p["stderr"]) for p in points]
        best = curve.get("best_epoch")
        out.append(
            Series(
                run=curve["run"],
                epochs=epochs,
                values=values,
                best_epoch=float(best) if best is not None else best_epoch_of(epochs, values),
                stderrs=stderrs,
            )
        )
    return out


BAND_Z = INTERVAL_Z  # the band is value +- BAND_Z * stderr, as the table's tooltips


def band(series: Series) -> tuple[list[float], list[float], list[float]]:
    """(epochs, lower, upper) in percent for the points that have a stored stderr."""
    epochs, lower, upper = [], [], []
    for e, v, se in zip(series.epochs, series.values, series.stderrs or [], strict=False):
        if se is not None:
            epochs.append(e)
            lower.append(100 * (v - BAND_Z * se))
            upper.append(100 * (v + BAND_Z * se))
    return epochs, lower, upper


@dataclass(frozen=True)
class Significant:
    """An epoch where run B differs from run A beyond the gate's interval (points)."""

    epoch: float
    diff: float
    ci_low: float
    ci_high: float


def significant_epochs(
    reports: dict[float, dict[str, Any]], task: str, metric: str
) -> list[Significant]:
    """Epochs whose ``GET /v1/compare`` (A@epoch vs B@epoch) interval for ``metric`` excludes
    0; refused or missing comparisons mark nothing."""
    out = []
    for epoch, report in sorted(reports.items()):
        for t in report.get("tasks", []):
            if t["task"] != task:
                continue
            for m in t.get("metrics", []):
                p = m.get("points")
                if m["metric"] == metric and p and (p["ci_low"] > 0 or p["ci_high"] < 0):
                    out.append(Significant(epoch, p["diff"], p["ci_low"], p["ci_high"]))
    return out


def _band_trace(fig: go.Figure, s: Series) -> None:
    epochs, lower, upper = band(s)
    if not epochs:
        return
    fig.add_trace(
        go.Scatter(
            x=[*epochs, *reversed(epochs)],
            y=[*upper, *reversed(lower)],
            fill="toself",
            opacity=0.2,
            line={"width": 0},
            mode="lines",
            name=f"{plot_text(s.run)} +-{BAND_Z:g} stderr",
            legendgroup=s.run,
            showlegend=False,
            hoverinfo="skip",
        )
    )


def _significance_trace(fig: go.Figure, s: Series, marks: list[Significant], pair: str) -> None:
    points = [(m, s.value_at(m.epoch)) for m in marks]
    points = [(m, v) for m, v in points if v is not None]
    if not points:
        return
    fig.add_trace(
        go.Scatter(
            x=[m.epoch for m, _ in points],
            y=[100 * v for _, v in points],
            mode="markers",
            marker={"symbol": "diamond-open", "size": 18, "line": {"width": 2}},
            name=f"significant: {plot_text(pair)}",
            legendgroup="significance",
            text=[f"{m.diff:+.1f} points [{m.ci_low:+.1f}, {m.ci_high:+.1f}]" for m, _ in points],
            hovertemplate=f"{plot_text(pair)} at epoch %{{x:g}}: %{{text}}<extra></extra>",
        )
    )


def curve_figure(
    series: list[Series],
    title: str,
    y_label: str,
    best_from: dict[str, float | None] | None = None,
    significant: tuple[str, str, list[Significant]] | None = None,
) -> go.Figure:
    """Lines per run with their stderr band, a star at each run's BEST epoch (``best_from``
    overrides which epoch, e.g. the learning metric's BEST on the forgetting plot) and, with
    ``significant`` = (run A, run B, marks), a diamond on B's curve at each significant
    epoch. Scores in percent."""
    fig = go.Figure()
    for s in series:
        _band_trace(fig, s)
        fig.add_trace(
            go.Scatter(
                x=s.epochs,
                y=[100 * v for v in s.values],
                mode="lines+markers",
                name=plot_text(s.run),
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
                    name=f"{plot_text(s.run)} BEST (epoch {best:g})",
                    legendgroup=s.run,
                    showlegend=False,
                    hovertemplate=(
                        f"{plot_text(s.run)}: BEST epoch {best:g}, %{{y:.1f}}<extra></extra>"
                    ),
                )
            )
    if significant is not None:
        run_a, run_b, marks = significant
        on_b = next((s for s in series if s.run == run_b), None)
        if on_b is not None:
            _significance_trace(fig, on_b, marks, f"{run_b} - {run_a}")
    fig.update_layout(
        title=title, xaxis_title="epoch", yaxis_title=y_label, legend_title="run", height=420
    )
    return fig
