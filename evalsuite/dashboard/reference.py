"""The RaSA paper's published numbers as reference rows beside the measured ones.

``paper_reference.yaml`` keeps them as printed (percent, hours, millions); here they are
converted to the API's units so the exports and the formatting treat them like any row.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

import yaml

from evalsuite.dashboard.table import Row, TableView, with_emphasis

# paper unit -> (API column key, factor to the API's unit)
_UNITS = {"time_h": ("train_time_s", 3600.0), "trainable_M": ("trainable_params", 1e6)}
_UNITS["extra_M"] = ("extra_params", 1e6)
_META = {"table", "domain", "base", "r", "method"}


@cache
def load_reference() -> dict[str, Any]:
    """The shipped reference file (package data, so it works from an installed wheel)."""
    text = resources.files("evalsuite.dashboard").joinpath("paper_reference.yaml").read_text()
    return yaml.safe_load(text)


def paper_base(name: str, bases: dict[str, list[str]]) -> str | None:
    """The paper's base model a measured base stands for: matched on the name after its last
    ``/``, lower case, against the listed aliases (or the paper's own name)."""
    short = name.rsplit("/", 1)[-1].lower()
    for paper_name, aliases in bases.items():
        if short == paper_name.lower() or short in {a.lower() for a in aliases}:
            return paper_name
    return None


def reference_cells(entry: dict[str, Any]) -> dict[str, float | None]:
    """One YAML row's numbers in the API's units (fractions, seconds, counts)."""
    cells: dict[str, float | None] = {}
    for key, value in entry.items():
        if key in _META or value is None:
            continue
        if key in _UNITS:
            api_key, factor = _UNITS[key]
            cells[api_key] = float(value) * factor
        else:
            cells[key] = float(value) / 100.0
    return cells


def with_reference_rows(view: TableView, reference: dict[str, Any] | None = None) -> TableView:
    """Insert a "(paper)" row after each measured row that the paper also reports.

    A reference row carries values only under the base models that match a paper base, and
    only for the row's own domain, rank and method; rows the paper lacks get none.
    """
    ref = reference if reference is not None else load_reference()
    entries = [e for e in ref.get("rows", []) if e.get("domain") == view.domain]
    by_key: dict[tuple[str, int | None, str], dict[str, Any]] = {
        (e["base"], e.get("r"), str(e["method"]).lower()): e for e in entries
    }
    bases = {b: paper_base(b, ref.get("bases", {})) for b in view.base_models}
    rows: list[Row] = []
    for row in view.rows:
        rows.append(row)
        if row.reference:
            continue
        cells = {
            base: reference_cells(by_key[(paper, row.r, row.method.lower())])
            for base, paper in bases.items()
            if paper is not None and (paper, row.r, row.method.lower()) in by_key
        }
        if cells:
            rows.append(Row(r=row.r, method=row.method, run=None, cells=cells, reference=True))
    return with_emphasis(replace(view, rows=rows, emphasis={}))
