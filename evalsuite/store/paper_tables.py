"""The data of the paper's Table 1 (code) and Table 2 (math), with its bold and italic marks.

Rows are (r, method) in the paper's order; each base model contributes one cell per row with
BEST/LAST of the domain's metrics, training time and parameter counts. When several runs share
(r, method, base model), the cell shows the one with the highest BEST of the first metric, and
names it (``cell.run``). Bold marks the best of a column per base model, italic the best of a
column within one rank (key ``"r:column"``), by the one rule in ``evalsuite.emphasis``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from evalsuite.emphasis import BOLD, ITALIC, column_marks
from evalsuite.protocol import paper_tables
from evalsuite.store.queries import BestLast, best_last

# the paper's row order within a rank; unknown methods come before RaSA, full fine-tuning last
METHOD_ORDER = ["lora", "rslora", "rora", "olora", "pissa", "prilora", "adalora", "dora", "vera"]
LATE_ORDER = ["mora", "rasa", "fft"]


def _method_key(method: str) -> tuple[int, int, str]:
    if method in METHOD_ORDER:
        return (0, METHOD_ORDER.index(method), method)
    if method in LATE_ORDER:
        return (2, LATE_ORDER.index(method), method)
    return (1, 0, method)


def _lead(cell: dict[str, Any], metrics: list[str]) -> float:
    value = cell[f"{metrics[0]}_best"]
    return float("-inf") if value is None else value


def _columns(metrics: list[str]) -> list[dict[str, str]]:
    cols = [{"key": "train_time_s", "label": "Time"}]
    for metric in metrics:
        for which in ("best", "last"):
            cols.append({"key": f"{metric}_{which}", "label": f"{metric.upper()} {which.upper()}"})
    cols.append({"key": "trainable_params", "label": "# Trainable Param."})
    cols.append({"key": "extra_params", "label": "# Extra Param."})
    return cols


def table_data(
    session: Session,
    domain: str,
    base_model: str | None = None,
    method: str | None = None,
    r: int | None = None,
) -> dict[str, Any]:
    """``TableData`` of docs/api.md for ``domain`` (``code`` or ``math``)."""
    table = paper_tables()[domain]
    task, metrics = table.task, [m.metric for m in table.metrics]
    found = best_last(session, task, metrics, domain, base_model, method, r)
    per_run: dict[str, dict[str, BestLast]] = {}
    for row in sorted(found, key=lambda row: row.run):
        per_run.setdefault(row.run, {})[row.metric] = row
    cells: dict[tuple[int | None, str], dict[str, dict[str, Any]]] = {}
    for run, by_metric in per_run.items():
        first = next(iter(by_metric.values()))
        cell: dict[str, Any] = {
            "run": run,
            "train_time_s": first.train_time_s,
            "trainable_params": first.trainable_params,
            "extra_params": first.extra_params,
        }
        for metric in metrics:
            got = by_metric.get(metric)
            cell[f"{metric}_best"] = got.best if got else None
            cell[f"{metric}_last"] = got.last if got else None
            cell[f"{metric}_best_stderr"] = got.best_stderr if got else None
            cell[f"{metric}_last_stderr"] = got.last_stderr if got else None
        row_cells = cells.setdefault((first.r, first.method), {})
        held = row_cells.get(first.base_model)
        if held is None or _lead(cell, metrics) > _lead(held, metrics):
            row_cells[first.base_model] = cell
    keys = sorted(cells, key=lambda key: (key[0] is None, key[0] or 0, _method_key(key[1])))
    rows = [
        {
            "r": r_,
            "method": method_,
            "run": next(iter(cells[(r_, method_)].values()))["run"],
            "cells": cells[(r_, method_)],
        }
        for r_, method_ in keys
    ]
    base_models = sorted({bm for row in rows for bm in row["cells"]})
    return {
        "domain": domain,
        "base_models": base_models,
        "columns": _columns(metrics),
        "rows": rows,
        "emphasis": _emphasis(rows, base_models, metrics),
    }


def _emphasis(
    rows: list[dict[str, Any]], base_models: list[str], metrics: list[str]
) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Per base model, the runs marked bold per column and italic per ``r:column``
    (``evalsuite.emphasis``: every tied best is marked)."""
    columns = [f"{m}_{which}" for m in metrics for which in ("best", "last")]
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for bm in base_models:
        competing = [i for i, row in enumerate(rows) if bm in row["cells"]]
        marks: dict[str, dict[str, list[str]]] = {BOLD: {}, ITALIC: {}}
        for col in columns:
            found = column_marks(
                competing,
                rank=lambda i: rows[i]["r"],
                value=lambda i, bm=bm, col=col: rows[i]["cells"][bm][col],
            )
            for i, mark in found.items():
                key = col if mark == BOLD else f"{rows[i]['r']}:{col}"
                marks[mark].setdefault(key, []).append(rows[i]["cells"][bm]["run"])
        out[bm] = marks
    return out
