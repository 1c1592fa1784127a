"""Dashboard table logic without Streamlit: layout, emphasis, filters, references, exports."""

from __future__ import annotations

import csv
import io
import re

from evalsuite.dashboard.escape import csv_cell, md_text
from evalsuite.dashboard.exports import latex_escape, to_csv, to_html, to_latex, to_markdown
from evalsuite.dashboard.reference import load_reference, paper_base, with_reference_rows
from evalsuite.dashboard.table import (
    filtered,
    format_params,
    format_value,
    from_table_data,
)
from evalsuite.emphasis import BOLD, ITALIC

CODE_KEYS = ["pass@1_best", "pass@1_last", "pass@10_best", "pass@10_last"]


def _cells(time_h, p1b, p1l, p10b, p10l, params):
    return {
        "train_time_s": time_h * 3600,
        "pass@1_best": p1b,
        "pass@1_last": p1l,
        "pass@10_best": p10b,
        "pass@10_last": p10l,
        "trainable_params": params,
        "extra_params": None,
    }


def table_data() -> dict:
    """Two ranks of two methods plus VeRA alone at 1024, two base models."""
    rows = [
        (1024, "vera", "vera", _cells(11.3, 0.488, 0.488, 0.665, 0.642, 1.6e6)),
        (8, "lora", "lora8", _cells(9.6, 0.561, 0.530, 0.712, 0.685, 21.0e6)),
        (8, "rasa", "rasa8", _cells(11.2, 0.579, 0.569, 0.726, 0.696, 21.0e6)),
        (32, "lora", "lora32", _cells(10.0, 0.579, 0.569, 0.698, 0.692, 83.9e6)),
        (32, "rasa", "rasa32", _cells(11.5, 0.595, 0.562, 0.725, 0.714, 83.9e6)),
    ]
    other = {"lora8": 0.426, "rasa8": 0.500, "lora32": 0.502, "rasa32": 0.557, "vera": 0.425}
    return {
        "domain": "code",
        "base_models": ["meta-llama/Llama-3.1-8B", "Mistral-0.3-7B"],
        "columns": [{"key": k, "label": k} for k in ["train_time_s", *CODE_KEYS]]
        + [{"key": "trainable_params", "label": "p"}, {"key": "extra_params", "label": "e"}],
        "rows": [
            {
                "r": r,
                "method": m,
                "run": run,
                "cells": {
                    "meta-llama/Llama-3.1-8B": cells,
                    "Mistral-0.3-7B": {**cells, "pass@1_best": other[run]},
                },
            }
            for r, m, run, cells in rows
        ],
        "emphasis": {},
    }


def _mark(view, run, base, key):
    i = next(i for i, row in enumerate(view.rows) if row.run == run and not row.reference)
    return view.emphasis.get((i, base, key))


def test_layout_and_cell_text():
    view = from_table_data(table_data())
    assert [c.label for c in view.columns][:3] == ["Time", "PASS@1 BEST", "PASS@1 LAST"]
    assert [c.label for c in view.columns][-2:] == ["# Trainable Param.", "# Extra Param."]
    assert [row.label for row in view.rows] == ["VeRA", "LoRA", "RaSA", "LoRA", "RaSA"]
    assert format_value("train_time_s", 11.3 * 3600) == "11.3h"
    assert format_value("pass@1_best", 0.579) == "57.9"
    assert format_value("acc_last", None) == "–"
    assert format_params(21.0e6) == "21.0M" and format_params(7.5e9) == "7.5B"
    assert format_params(0) == "–"


def test_bold_is_best_per_model_italic_best_per_rank():
    view = from_table_data(table_data())
    llama = "meta-llama/Llama-3.1-8B"
    # PASS@1 BEST, Llama: 59.5 (rasa32) is best overall -> bold, not also italic
    assert _mark(view, "rasa32", llama, "pass@1_best") == BOLD
    # at r=8, RaSA 57.9 beats LoRA 56.1 -> italic; LoRA plain
    assert _mark(view, "rasa8", llama, "pass@1_best") == ITALIC
    assert _mark(view, "lora8", llama, "pass@1_best") is None
    # ties are all marked: PASS@1 LAST 56.9 of r=8 RaSA and of r=32 LoRA are both bold
    assert _mark(view, "rasa8", llama, "pass@1_last") == BOLD
    assert _mark(view, "lora32", llama, "pass@1_last") == BOLD
    # VeRA alone at its rank is never italic by default
    assert all(v != ITALIC for (i, _, _), v in view.emphasis.items() if view.rows[i].r == 1024)
    # time and parameter counts are not compared
    assert not any(k in ("train_time_s", "trainable_params") for (_, _, k) in view.emphasis)
    # per base model: on Mistral the best PASS@1 BEST is rasa32's 55.7
    assert _mark(view, "rasa32", "Mistral-0.3-7B", "pass@1_best") == BOLD


def test_filters_recompute_emphasis():
    view = filtered(from_table_data(table_data()), methods=["lora"], ranks=[8, 32])
    assert [row.run for row in view.rows] == ["lora8", "lora32"]
    llama = "meta-llama/Llama-3.1-8B"
    assert _mark(view, "lora32", llama, "pass@1_best") == BOLD  # 57.9 > 56.1 once RaSA is gone
    only_mistral = filtered(from_table_data(table_data()), base_models=["Mistral-0.3-7B"])
    assert only_mistral.base_models == ["Mistral-0.3-7B"]
    assert all(set(row.cells) == {"Mistral-0.3-7B"} for row in only_mistral.rows)


def test_reference_rows_follow_their_measured_row_and_never_compete():
    assert paper_base("meta-llama/Llama-3.1-8B", load_reference()["bases"]) == "Llama-3.1-8B"
    assert paper_base("my-own-base", load_reference()["bases"]) is None
    view = with_reference_rows(from_table_data(table_data()))
    labels = [row.label for row in view.rows]
    assert labels[:4] == ["VeRA", "VeRA (paper)", "LoRA", "LoRA (paper)"]
    ref = view.rows[labels.index("RaSA (paper)")]
    # the file's Table 1, r=8 RaSA on Llama: 57.9 / 56.9 / 72.6 / 69.6, 11.2h, 21.0M
    llama = ref.cells["meta-llama/Llama-3.1-8B"]
    assert [format_value(k, llama[k]) for k in CODE_KEYS] == ["57.9", "56.9", "72.6", "69.6"]
    assert format_value("train_time_s", llama["train_time_s"]) == "11.2h"
    assert format_value("trainable_params", llama["trainable_params"]) == "21.0M"
    assert not any(view.rows[i].reference for (i, _, _) in view.emphasis)
    # the measured rasa32 keeps its bold after rows were inserted before it
    assert _mark(view, "rasa32", "meta-llama/Llama-3.1-8B", "pass@1_best") == BOLD


def test_csv_is_raw_and_round_trips():
    view = from_table_data(table_data())
    rows = list(csv.reader(io.StringIO(to_csv(view))))
    assert rows[0][:4] == ["r", "method", "source", "meta-llama/Llama-3.1-8B run"]
    assert "meta-llama/Llama-3.1-8B PASS@1 BEST" in rows[0]
    rasa32 = dict(zip(rows[0], rows[5], strict=True))
    assert rasa32["Mistral-0.3-7B run"] == "rasa32" and rasa32["source"] == "measured"
    assert float(rasa32["meta-llama/Llama-3.1-8B PASS@1 BEST"]) == 0.595
    assert float(rasa32["Mistral-0.3-7B Time"]) == 11.5 * 3600
    assert rasa32["Mistral-0.3-7B # Extra Param."] == ""


def test_markdown_marks_emphasis():
    md = to_markdown(from_table_data(table_data()))
    lines = md.splitlines()
    assert len({line.count("|") for line in lines}) == 1  # every line has the same columns
    rasa32 = next(line for line in lines if line.startswith("| 32 | RaSA"))
    assert "**59.5**" in rasa32
    rasa8 = next(line for line in lines if line.startswith("| 8 | RaSA"))
    assert "*57.9*" in rasa8 and "**57.9**" not in rasa8
    assert "| 1024 | VeRA | 11.3h | 48.8 |" in md


def _latex_width(line: str) -> int:
    spans = [int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", line)]
    return line.count("&") + 1 + sum(n - 1 for n in spans)


def test_latex_layout_escapes_and_emphasis():
    tex = to_latex(from_table_data(table_data()))
    body = [line for line in tex.splitlines() if line.endswith(r"\\")]
    assert {_latex_width(line) for line in body} == {2 + 2 * 7}
    assert r"\multicolumn{7}{c}{meta-llama/Llama-3.1-8B}" in tex
    assert r"\multicolumn{2}{c}{PASS@1}" in tex and r"\# Trainable Param." in tex
    assert r"\textbf{59.5}" in tex and r"\textit{57.9}" in tex
    assert tex.count(r"\midrule") == 1 + 2  # after the header, then between the 3 ranks
    assert latex_escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"


def test_html_tags_each_cell():
    html = to_html(from_table_data(table_data()))
    cell = re.search(
        r'data-run="rasa32" data-base="meta-llama/Llama-3.1-8B" data-col="pass@1_best">(.*?)</td>',
        html,
    )
    assert cell and cell.group(1) == "<b>59.5</b>"
    assert html.count("<tr>") == 3 + 5  # header rows + body rows


# names a hostile token holder can give: a spreadsheet formula (OWASP's example), Markdown
# that would be a link, and HTML that would run script
FORMULA = "=cmd|' /C calc'!A0"
MARKDOWN = "**bold** [x](http://evil)"
TAG = "<img src=x onerror=alert(1)>"


def hostile_view():
    data = table_data()
    data["base_models"] = [MARKDOWN, TAG]
    data["rows"] = data["rows"][:2]
    for row, method in zip(data["rows"], (FORMULA, "@SUM(1+1)*cmd|' /C calc'!A0"), strict=True):
        row["method"] = method
        row["run"] = {FORMULA: "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0": TAG}[method]
        row["cells"] = {MARKDOWN: row["cells"]["meta-llama/Llama-3.1-8B"], TAG: {}}
    return from_table_data(data)


def test_csv_cells_never_start_a_formula():
    rows = list(csv.reader(io.StringIO(to_csv(hostile_view()))))
    cells = [cell for row in rows for cell in row]
    assert f"'{FORMULA}" in cells and "'-2+3" in cells and "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    assert f"{MARKDOWN} run" in rows[0]  # text not starting a formula is left as it is
    numbers = dict(zip(rows[0], rows[1], strict=True))
    assert float(numbers[f"{MARKDOWN} Time"]) == 11.3 * 3600  # numbers stay numbers


def test_csv_cell_escapes_each_formula_start_and_only_text():
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell(f"{start}1+1") == f"'{start}1+1"
    assert csv_cell("a=1") == "a=1" and csv_cell(-0.5) == -0.5 and csv_cell("") == ""


def test_html_table_shows_names_as_text():
    html = to_html(hostile_view())
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'data-run="&lt;img src=x onerror=alert(1)&gt;"' in html
    assert "**bold** [x](http://evil)" in html  # HTML does not render Markdown: plain text
    assert "&#x27; /C calc&#x27;" in html  # quotes escaped too: attribute values cannot end


def test_markdown_export_shows_names_as_text():
    md = to_markdown(hostile_view())
    assert MARKDOWN not in md and "[x](" not in md and TAG not in md
    assert md_text(MARKDOWN, inline=True) in md and md_text(TAG, inline=True) in md
    assert r"\*\*bold\*\* \[x\]\(http\://evil\)" in md
    lines = md.splitlines()
    assert len({line.count("|") - line.count(r"\|") for line in lines}) == 1  # no extra column


def test_md_text_escapes_every_markdown_opener():
    for hostile in (MARKDOWN, TAG, "![t](http://x/a.png)", ":red[alarm]", "$x$", "`code`",
                    "# heading", "a | b", "~~s~~", "&lt;", "_i_", "<http://x>"):  # fmt: skip
        escaped = md_text(hostile)
        # each special character is preceded by a backslash, so none can open anything
        assert re.fullmatch(r"(?:[^\\`*_{}\[\]()<>#+\-!|~$:&=]|\\[\\`*_{}\[\]()<>#+\-!|~$:&=])*",
                            escaped), escaped  # fmt: skip
        assert re.sub(r"\\(.)", r"\1", escaped) == hostile  # and it reads as the same text
    assert md_text("a\nb\r\nc", inline=True) == "a b c" and md_text("a\nb") == "a\nb"
    assert md_text("Llama 3.1 8B, r=8") == r"Llama 3.1 8B, r\=8"
