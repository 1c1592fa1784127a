"""The task layer: declarative task YAML (``definitions/``) and prompt templates (``prompts/``)
shipped inside the package, and the code that reads and runs them.

``spec`` parses a task YAML, ``registry`` finds tasks and suites by name (the shipped
definitions plus any ``--task-dir``), ``data`` loads documents, ``templates`` renders prompts,
``execute`` runs a task on an engine and ``scorers`` turns answers into metrics.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def definitions_dir() -> Path:
    """The shipped task YAML files and ``suites.yaml``."""
    return _HERE / "definitions"


def prompts_dir() -> Path:
    """The shipped prompt templates (a task's ``prompt.file`` is looked up beside it first)."""
    return _HERE / "prompts"
