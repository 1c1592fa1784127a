"""The paper's Tables 1 and 2 as a plain data model: columns, rows, emphasis and cell text.

``TableData`` from ``GET /v1/tables/{domain}`` becomes a ``TableView`` that the page, the
exports and the tests share. Emphasis is computed here over the rows actually shown, so a
filtered table still marks the best of what is visible (the API's ``emphasis`` covers the
whole table; on an unfiltered table both must agree, which the tests check).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from evalsuite.emphasis import column_marks

# Columns of one base model in the paper's order; keys the API adds later go last.
COLUMN_ORDER = (
    "train_time_s",
    "pass@1_best",
    "pass@1_last",
    "pass@10_best",
    "pass@10_last",
    "acc_best",
    "acc_last",
    "trainable_params",
    "extra_params",
)
GROUP_LABELS = {
    "train_time_s": "Time",
    "trainable_params": "# Trainable Param.",
    "extra_params": "# Extra Param.",
}
# Bands and tooltips show value +- INTERVAL_Z * stored stderr: a normal 95% interval.
INTERVAL_Z = 1.96
# The paper's spelling of the methods the API names in lower case.
METHOD_LABELS = {
    "lora": "LoRA",
    "rslora": "rsLoRA",
    "rora": "RoRA",
    "rasa": "RaSA",
    "vera": "VeRA",
    "mora": "MoRA",
    "dora": "DoRA",
    "adalora": "AdaLoRA",
    "olora": "OLoRA",
    "prilora": "PriLoRA",
    "fft": "FFT",
}


def method_label(method: str) -> str:
    """``rasa`` -> ``RaSA``; a method the paper does not have keeps its own name."""
    return METHOD_LABELS.get(method.lower(), method)


@dataclass(frozen=True)
class Column:
    """One column under each base model: ``group`` is the top header, ``sub`` BEST/LAST."""

    key: str
    group: str
    sub: str = ""

    @property
    def is_metric(self) -> bool:
        """Only scores are compared for bold/italic; time and parameter counts are not."""
        return self.key.endswith(("_best", "_last"))

    @property
    def label(self) -> str:
        return f"{self.group} {self.sub}".strip()


@dataclass(frozen=True)
class Row:
    """One (rank, method) line; ``cells[base_model][column key]`` in the API's units."""

    r: int | None
    method: str
    run: str | None
    cells: dict[str, dict[str, Any]]  # values, plus "run": the run behind that cell
    reference: bool = False  # a published number from the paper, never emphasised

    @property
    def label(self) -> str:
        name = method_label(self.method)
        return f"{name} (paper)" if self.reference else name


@dataclass
class TableView:
    """What one leaderboard table shows; ``emphasis[(row index, base, key)]`` is bold/italic."""

    domain: str
    base_models: list[str]
    columns: list[Column]
    rows: list[Row]
    emphasis: dict[tuple[int, str, str], str] = field(default_factory=dict)


def column_for(key: str, label: str | None = None) -> Column:
    """``pass@1_best`` -> (PASS@1, BEST); unknown keys keep the API's label."""
    if key in GROUP_LABELS:
        return Column(key, GROUP_LABELS[key])
    metric, _, which = key.rpartition("_")
    if metric and which in ("best", "last"):
        return Column(key, metric.upper(), which.upper())
    return Column(key, label or key)


def _ordered_columns(columns: Iterable[dict[str, Any]]) -> list[Column]:
    listed = {c["key"]: c.get("label") for c in columns}
    keys = [k for k in COLUMN_ORDER if k in listed] + [k for k in listed if k not in COLUMN_ORDER]
    return [column_for(k, listed[k]) for k in keys]


def from_table_data(data: dict[str, Any]) -> TableView:
    """Build the view from the API's ``TableData`` (rows kept in the API's paper order)."""
    rows = [
        Row(
            r=row.get("r"),
            method=row["method"],
            run=row.get("run"),
            cells={b: dict(c or {}) for b, c in (row.get("cells") or {}).items()},
        )
        for row in data.get("rows", [])
    ]
    view = TableView(
        domain=data.get("domain", ""),
        base_models=list(data.get("base_models", [])),
        columns=_ordered_columns(data.get("columns", [])),
        rows=rows,
    )
    return with_emphasis(view)


def filtered(
    view: TableView,
    base_models: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    ranks: Iterable[int | None] | None = None,
) -> TableView:
    """Keep the chosen bases, methods and ranks (None: keep all); emphasis is recomputed."""
    bases = [b for b in view.base_models if base_models is None or b in set(base_models)]
    method_set = None if methods is None else {m.lower() for m in methods}
    rank_set = None if ranks is None else set(ranks)
    rows = [
        replace(row, cells={b: c for b, c in row.cells.items() if b in bases})
        for row in view.rows
        if (method_set is None or row.method.lower() in method_set)
        and (rank_set is None or row.r in rank_set)
    ]
    return with_emphasis(replace(view, base_models=bases, rows=rows, emphasis={}))


def with_emphasis(view: TableView) -> TableView:
    """The view with the paper's bold/italic marks (``evalsuite.emphasis``), recomputed over
    the rows it shows; reference rows never compete, time and parameter counts are not
    compared."""
    emphasis: dict[tuple[int, str, str], str] = {}
    measured = [i for i, row in enumerate(view.rows) if not row.reference]
    for base in view.base_models:
        for col in (c for c in view.columns if c.is_metric):

            def value(i: int, base: str = base, key: str = col.key) -> float | None:
                return view.rows[i].cells.get(base, {}).get(key)

            found = column_marks(measured, rank=lambda i: view.rows[i].r, value=value)
            for i, mark in found.items():
                emphasis[(i, base, col.key)] = mark
    return replace(view, emphasis=emphasis)


def format_value(key: str, value: float | None) -> str:
    """The paper's cell text: scores in percent (one decimal), time in hours, params M/B."""
    if value is None:
        return "–"
    if key == "train_time_s":
        return f"{value / 3600:.1f}h"
    if key in ("trainable_params", "extra_params"):
        return format_params(value)
    return f"{100 * value:.1f}"


def format_params(count: float) -> str:
    """21_000_000 -> ``21.0M``, 7.5e9 -> ``7.5B``, 0 -> ``–`` (the paper's blank)."""
    if not count:
        return "–"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.1f}{unit}"
    return f"{count:.0f}"


def format_rank(r: int | None) -> str:
    """FFT has no rank: the paper's ``_``."""
    return "–" if r is None else str(r)


def cell_run(row: Row, base: str) -> str | None:
    """The run behind one cell: the API names it per base model (a row spans several runs)."""
    cell = row.cells.get(base)
    if cell is None or row.reference:
        return None
    return cell.get("run", row.run)


def ranks_of(view: TableView) -> list[int | None]:
    """Distinct ranks in row order (the filter's choices)."""
    return list(dict.fromkeys(row.r for row in view.rows))


def methods_of(view: TableView) -> list[str]:
    """Distinct methods in row order (the filter's choices)."""
    return list(dict.fromkeys(row.method for row in view.rows if not row.reference))


def interval_note(row: Row, base: str, col: Column) -> str | None:
    """The tooltip of a score cell: its interval from the stored stderr (None without one)."""
    if not col.is_metric:
        return None
    cell = row.cells.get(base) or {}
    value, stderr = cell.get(col.key), cell.get(f"{col.key}_stderr")
    if value is None or stderr is None:
        return None
    half = 100 * INTERVAL_Z * stderr
    return (
        f"{100 * value:.1f} +- {half:.1f} points ({INTERVAL_Z:g} x stderr {100 * stderr:.2f}; "
        f"95% normal interval [{100 * value - half:.1f}, {100 * value + half:.1f}])"
    )
