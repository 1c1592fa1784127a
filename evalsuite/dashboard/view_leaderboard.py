"""Leaderboard page: paper Table 1 (code) or Table 2 (math), filters, exports."""

from __future__ import annotations

import streamlit as st

from evalsuite.dashboard.data import Conn, empty_state, get
from evalsuite.dashboard.exports import to_csv, to_html, to_latex, to_markdown
from evalsuite.dashboard.reference import with_reference_rows
from evalsuite.dashboard.table import (
    filtered,
    format_rank,
    from_table_data,
    method_label,
    methods_of,
    ranks_of,
)
from evalsuite.protocol import paper_tables

DOMAINS = {domain: table.title for domain, table in paper_tables().items()}
STYLE = """<style>
table.evalsuite-leaderboard { border-collapse: collapse; font-size: 0.85rem; }
table.evalsuite-leaderboard th, table.evalsuite-leaderboard td {
  border: 1px solid rgba(128,128,128,0.35); padding: 2px 6px; text-align: right; }
table.evalsuite-leaderboard th { text-align: center; }
table.evalsuite-leaderboard tr.reference td { color: #888; font-size: 0.8rem; }
</style>"""


def render(conn: Conn) -> None:
    """Draw the page (one API read: the whole table; filters work on it locally)."""
    domain = st.radio(
        "Table", list(DOMAINS), format_func=DOMAINS.__getitem__, horizontal=True, key="lb_domain"
    )
    view = from_table_data(get(conn, "table", domain))
    st.subheader(DOMAINS[domain])
    if not view.rows:
        empty_state(conn.url, f"{domain} results", domain)
        return
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    bases = c1.multiselect("Base models", view.base_models, default=view.base_models)
    methods = c2.multiselect(
        "Methods", methods_of(view), default=methods_of(view), format_func=method_label
    )
    ranks = c3.multiselect("Ranks", ranks_of(view), default=ranks_of(view), format_func=format_rank)
    reference = c4.toggle("Paper reference rows", value=False, help="The RaSA paper's numbers.")
    shown = filtered(view, base_models=bases, methods=methods, ranks=ranks)
    if reference:
        shown = with_reference_rows(shown)
    if not shown.rows or not shown.base_models:
        st.warning("No row matches the filters.")
        return
    st.markdown(STYLE + to_html(shown), unsafe_allow_html=True)
    st.caption(
        "Scores in percent. **Bold**: best per base model; *italic*: best per rank. "
        "BEST = best epoch, LAST = final epoch."
    )
    exports = {"csv": to_csv(shown), "md": to_markdown(shown), "tex": to_latex(shown)}
    d1, d2, d3 = st.columns(3)
    d1.download_button("CSV", exports["csv"], f"table_{domain}.csv", "text/csv")
    d2.download_button("Markdown", exports["md"], f"table_{domain}.md", "text/markdown")
    d3.download_button("LaTeX", exports["tex"], f"table_{domain}.tex", "application/x-tex")
    with st.expander("Export text"):
        md_tab, tex_tab, csv_tab = st.tabs(["Markdown", "LaTeX", "CSV"])
        md_tab.code(exports["md"], language="markdown")
        tex_tab.code(exports["tex"], language="latex")
        csv_tab.code(exports["csv"], language="text")
