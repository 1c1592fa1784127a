"""Strings from the API (run, model and method names, URIs, failure reasons, document ids)
shown as the text they are: never Markdown, never a spreadsheet formula.

Anyone with a token names runs and writes failure reasons, and anyone who can reach the
dashboard reads them: a run named ``[release notes](http://evil)`` must not become a link on
every viewer's page, nor ``=HYPERLINK(...)`` a formula in the CSV someone opens in a
spreadsheet. Streamlit renders the text of ``st.caption``, ``st.subheader``, ``st.info``,
``st.error``... and expander labels as Markdown (raw HTML is already shown as text there;
the leaderboard's own HTML table escapes with ``html.escape``, evalsuite.dashboard.exports).
"""

from __future__ import annotations

import html
import re

# every character that opens or closes Markdown (CommonMark, GFM tables and strikethrough),
# Streamlit's own directives (``:red[...]``, ``:material/icon:``, ``$math$``) or an HTML
# entity; backslash-escaping any ASCII punctuation is valid CommonMark and renders the
# character itself. '.', ',', '/', '@', quotes, ';', '?', '%' and '^' start nothing.
MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-!|~$:&=")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# a spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def md_text(value: object, inline: bool = False) -> str:
    """``value`` as literal text inside Markdown; ``inline=True`` also makes line breaks
    spaces (a table cell or a heading is one line)."""
    text = "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in str(value))
    return _LINE_BREAK.sub(" ", text) if inline else text


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting with a formula character
    gets a leading ``'`` (numbers pass unchanged, so a negative score stays a number)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def plot_text(value: object) -> str:
    """``value`` as literal text in a Plotly label (trace name, legend, hover): Plotly renders
    a subset of HTML there (``<a href>``, ``<b>``, ``<br>``) and decodes entities, so escaping
    the markup shows the characters themselves and makes no link."""
    return html.escape(str(value), quote=False)
