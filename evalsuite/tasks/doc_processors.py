"""Fields derived from a task's documents before prompting, by name from the task YAML.

``humanevalpack_instruction``: the instruction of bigcode's HumanEvalPack (python), which the
RaSA paper's code prompt uses (Appendix B, Figure 9): "Write a Python function `<signature>`
to solve the following problem:\\n<docstring>", the signature as written on the problem's
``def`` line and the docstring cleaned (dedented, outer blank lines dropped). HumanEval+
keeps HumanEval's prompts, so the instruction is rebuilt from ``prompt`` and ``entry_point``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from evalsuite.tasks.errors import TaskError


def humanevalpack_instruction(doc: dict[str, Any]) -> dict[str, Any]:
    prompt, name = doc["prompt"], doc["entry_point"]
    try:
        tree = ast.parse(prompt)
    except SyntaxError as e:
        raise TaskError(f"{doc.get('task_id')}: the prompt is not valid Python ({e})") from e
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    if len(found) != 1 or ast.get_docstring(found[0]) is None:
        raise TaskError(f"{doc.get('task_id')}: no single documented function {name!r} in prompt")
    header = prompt.splitlines()[found[0].lineno - 1].strip()
    signature = header.removeprefix("def ").rstrip().removesuffix(":")
    docstring = ast.get_docstring(found[0], clean=True)
    instruction = f"Write a Python function `{signature}` to solve the following problem:\n"
    return {**doc, "instruction": instruction + docstring}


PROCESSORS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "humanevalpack_instruction": humanevalpack_instruction,
}
