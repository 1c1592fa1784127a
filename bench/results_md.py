"""Each benchmark owns one ``## ...`` section of bench/RESULTS.md and rewrites only that one.

The file is re-read right before writing, since several benchmarks may run at once.
"""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# Benchmark results\n\n"
    "Figures written by the scripts in bench/; rerun a script to refresh its section.\n"
)


def replace_section(title: str, text: str) -> None:
    """Put ``text`` (which starts with ``title``) in place of that section, others kept."""
    old = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else HEADER
    start = old.find(title)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = old.find("\n## ", start + len(title))
        rest = old[end + 1 :] if end >= 0 else ""
        new = old[:start] + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    RESULTS_FILE.write_text(new)
