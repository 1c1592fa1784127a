"""A ``TableView`` as CSV, Markdown, LaTeX and the page's HTML: pure functions of the view.

CSV is for machines: raw API units (scores as fractions, time in seconds, parameter counts)
and no emphasis. Markdown, LaTeX and HTML are for people: the paper's cell text, bold for
the best per base model and italic for the best per rank, reference rows marked "(paper)".
Names come from whoever registered the runs, so each format escapes them: no CSV cell starts
a formula, no name is Markdown, LaTeX or HTML (evalsuite.dashboard.escape).
"""

from __future__ import annotations

import csv
import html
import io
from itertools import groupby

from evalsuite.dashboard.escape import csv_cell, md_text
from evalsuite.dashboard.table import (
    Column,
    TableView,
    cell_run,
    format_rank,
    format_value,
    interval_note,
)
from evalsuite.emphasis import BOLD, ITALIC


def _cell_text(view: TableView, i: int, base: str, col: Column) -> tuple[str, str | None]:
    row = view.rows[i]
    text = format_value(col.key, row.cells.get(base, {}).get(col.key))
    return text, view.emphasis.get((i, base, col.key))


def to_csv(view: TableView) -> str:
    """One header line (``<base> <column>``, plus ``<base> run`` naming the cell's run), then
    one line per row with raw values; text that a spreadsheet would run as a formula starts
    with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["r", "method", "source"]
    for base in view.base_models:
        header += [f"{base} run"] + [f"{base} {col.label}" for col in view.columns]
    writer.writerow([csv_cell(cell) for cell in header])
    for row in view.rows:
        line: list[object] = ["" if row.r is None else row.r, row.method]
        line.append("paper" if row.reference else "measured")
        for base in view.base_models:
            cells = row.cells.get(base, {})
            line.append(cell_run(row, base) or "")
            line += ["" if cells.get(col.key) is None else cells[col.key] for col in view.columns]
        writer.writerow([csv_cell(cell) for cell in line])
    return out.getvalue()


def to_markdown(view: TableView) -> str:
    """A pipe table with flattened headers; ``**x**`` bold, ``*x*`` italic; names as text."""
    header = ["r", "Method"] + [
        f"{base} {col.label}" for base in view.base_models for col in view.columns
    ]
    lines = ["| " + " | ".join(md_text(h, inline=True) for h in header) + " |"]
    lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
    for i, row in enumerate(view.rows):
        cells = [format_rank(row.r), md_text(row.label, inline=True)]
        for base in view.base_models:
            for col in view.columns:
                text, mark = _cell_text(view, i, base, col)
                cells.append(
                    f"**{text}**" if mark == BOLD else f"*{text}*" if mark == ITALIC else text
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially (``# Trainable Param.``, ``pass@1_best``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _header_groups(columns: list[Column]) -> list[tuple[str, int]]:
    return [(group, len(list(cols))) for group, cols in groupby(columns, key=lambda c: c.group)]


def to_latex(view: TableView) -> str:
    """A booktabs ``tabular`` in the paper's layout: base models, then column groups, then
    BEST/LAST; a rule between ranks; ``\\textbf`` / ``\\textit`` emphasis."""
    n = len(view.columns)
    spec = "ll" + ("|" + "r" * n) * len(view.base_models)
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    lines.append(
        " & ".join(
            ["", ""]
            + [f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(base)}}}" for base in view.base_models]
        )
        + r" \\"
    )
    groups = _header_groups(view.columns)
    group_cells = [
        f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}"
        if width > 1
        else latex_escape(group)
        for group, width in groups
    ]
    lines.append(" & ".join(["$r$", "Method"] + group_cells * len(view.base_models)) + r" \\")
    subs = [latex_escape(col.sub) for col in view.columns]
    lines.append(" & ".join(["", ""] + subs * len(view.base_models)) + r" \\")
    lines.append("\\midrule")
    previous: object = object()
    for i, row in enumerate(view.rows):
        if i and row.r != previous:
            lines.append("\\midrule")
        previous = row.r
        cells = [format_rank(row.r).replace("–", "--"), latex_escape(row.label)]
        for base in view.base_models:
            for col in view.columns:
                text, mark = _cell_text(view, i, base, col)
                text = "--" if text == "–" else latex_escape(text)
                cells.append(
                    f"\\textbf{{{text}}}"
                    if mark == BOLD
                    else f"\\textit{{{text}}}"
                    if mark == ITALIC
                    else text
                )
        lines.append(" & ".join(cells) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_html(view: TableView) -> str:
    """The page's table: three header rows like the paper, ``<b>``/``<i>`` emphasis, each
    cell tagged with ``data-run``/``data-base``/``data-col`` so tests can find it."""
    esc = html.escape
    n = len(view.columns)
    head = ['<tr><th rowspan="3">r</th><th rowspan="3">Method</th>']
    head += [f'<th colspan="{n}">{esc(base)}</th>' for base in view.base_models]
    head.append("</tr><tr>")
    subless = {col.group for col in view.columns if not col.sub}
    for _ in view.base_models:
        for group, width in _header_groups(view.columns):
            span = 'rowspan="2"' if group in subless and width == 1 else f'colspan="{width}"'
            head.append(f"<th {span}>{esc(group)}</th>")
    head.append("</tr><tr>")
    head += [
        f"<th>{esc(col.sub)}</th>" for _ in view.base_models for col in view.columns if col.sub
    ]
    head.append("</tr>")
    body = []
    for i, row in enumerate(view.rows):
        cls = ' class="reference"' if row.reference else ""
        cells = [f"<td>{esc(format_rank(row.r))}</td><td>{esc(row.label)}</td>"]
        for base in view.base_models:
            for col in view.columns:
                text, mark = _cell_text(view, i, base, col)
                inner = (
                    f"<b>{esc(text)}</b>"
                    if mark == BOLD
                    else f"<i>{esc(text)}</i>"
                    if mark == ITALIC
                    else esc(text)
                )
                note = interval_note(row, base, col)
                title = f'title="{esc(note)}" ' if note else ""
                cells.append(
                    f'<td {title}data-run="{esc(cell_run(row, base) or "")}" '
                    f'data-base="{esc(base)}" data-col="{esc(col.key)}">{inner}</td>'
                )
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<table class="evalsuite-leaderboard" data-domain="{esc(view.domain)}">'
        f"<thead>{''.join(head)}</thead><tbody>{''.join(body)}</tbody></table>"
    )
