"""Product text stands alone: no pointer at the development checkout's ``../shared`` folder.

Users have neither ``../shared/data`` nor ``../shared/papers``; the data layout is in
docs/data.md. Checked: the README, every Markdown file under docs/ and evalsuite/tasks/,
.env.example, and the ``--help`` of every command of the ``evalsuite`` CLI, found by walking
the click tree Typer builds (so a command added later is covered without editing this file).
Tests themselves may read ``../shared/data``; only what a user reads is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evalsuite.cli import app

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("../shared", "shared/data", "shared/papers")


def _documents() -> list[Path]:
    files = [ROOT / "README.md", ROOT / ".env.example"]
    for folder in ("docs", "evalsuite/tasks"):
        files += sorted((ROOT / folder).rglob("*.md"))
    return files


def _commands() -> list[tuple[list[str], Any]]:
    """(argv prefix, command) for the root and every command and subcommand, depth first.

    Typer's click objects (click's own, or the copy newer Typer versions vendor): a group
    keeps its subcommands in ``commands``, by name.
    """
    found: list[tuple[list[str], Any]] = []

    def walk(path: list[str], command: Any) -> None:
        found.append((path, command))
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            walk([*path, name], sub)

    walk([], typer.main.get_command(app))
    return found


def _offending(text: str) -> list[str]:
    return [s for s in FORBIDDEN if s in text]


def test_the_walk_finds_commands_and_subcommands():
    names = {" ".join(path) for path, _ in _commands()}
    # a group's subcommands are reached, not only the top level
    assert {"", "eval", "worker", "demo", "db", "db upgrade", "score", "adapter"} <= names
    assert any(name.startswith("score ") for name in names)


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_do_not_point_at_shared(path):
    assert path.is_file(), f"{path} is missing"
    bad = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _offending(line)
    ]
    assert not bad, f"{path.name} points at ../shared (use docs/data.md):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "path,command",
    [
        pytest.param(path, command, id=" ".join(["evalsuite", *path]))
        for path, command in _commands()
    ],
)
def test_help_does_not_point_at_shared(path, command):
    # the rendered --help, wide enough that no path is wrapped ...
    result = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"}
    )
    assert result.exit_code == 0, result.output
    assert not _offending(result.output), result.output
    # ... and the raw help strings, whatever the renderer does with them
    texts = [command.help or "", command.short_help or "", command.epilog or ""]
    texts += [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        assert not _offending(text), f"evalsuite {' '.join(path)}: {text!r}"
