"""The demo's data: a handful of problems per task, written for the demo, in each task's format.

The files land in the ``--data-dir`` layout (docs/data.md), so the demo runs the real task
definitions (prompts, sampling, stop strings, scorers) unchanged, only on other documents.
With ``--data-dir`` the demo instead takes a fixed subset of the real files: the first few
documents of each, copied in the same format.
"""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path
from typing import Any

CODE_PROBLEMS: list[dict[str, Any]] = [
    {
        "task_id": "Demo/0",
        "prompt": 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n'
        '    >>> add(2, 3)\n    5\n    """\n',
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "base_input": [[2, 3], [0, 0], [-1, 1]],
        "plus_input": [[10**9, 10**9], [-7, -8]],
    },
    {
        "task_id": "Demo/1",
        "prompt": 'def is_palindrome(text: str) -> bool:\n    """Whether text reads the same '
        'backwards.\n    >>> is_palindrome(\'aba\')\n    True\n    """\n',
        "entry_point": "is_palindrome",
        "canonical_solution": "    return text == text[::-1]\n",
        "base_input": [["aba"], ["ab"], [""]],
        "plus_input": [["racecar"], ["Aa"]],
    },
    {
        "task_id": "Demo/2",
        "prompt": 'def count_vowels(word: str) -> int:\n    """How many of the letters are '
        'a, e, i, o or u (lower case).\n    >>> count_vowels(\'demo\')\n    2\n    """\n',
        "entry_point": "count_vowels",
        "canonical_solution": "    return sum(c in 'aeiou' for c in word)\n",
        "base_input": [["demo"], ["xyz"], ["aeiou"]],
        "plus_input": [["AEIOU"], ["banana"]],
    },
    {
        "task_id": "Demo/3",
        "prompt": 'def largest(numbers: list) -> float:\n    """The largest number of a '
        'non-empty list.\n    >>> largest([1, 5, 2])\n    5\n    """\n',
        "entry_point": "largest",
        "canonical_solution": "    return max(numbers)\n",
        "base_input": [[[1, 5, 2]], [[-3]], [[0.5, 0.25]]],
        "plus_input": [[[-1, -2, -3]], [[2, 2, 2]]],
    },
]

MATH_PROBLEMS: list[tuple[str, str, str, str]] = [
    # (problem, solution ending in \boxed{}, subject, level)
    ("What is $2+3$?", "Adding, $2+3=\\boxed{5}$.", "Prealgebra", "Level 1"),
    ("Simplify $\\frac{6}{8}$.", "Divide by 2: $\\boxed{\\frac{3}{4}}$.", "Prealgebra", "Level 1"),
    ("Solve $2x+1=7$ for $x$.", "So $2x=6$ and $x=\\boxed{3}$.", "Algebra", "Level 2"),
    ("What is $\\sqrt{49}$?", "Since $7^2=49$, the answer is $\\boxed{7}$.", "Algebra", "Level 1"),
    (
        "How many ways can 3 books be arranged on a shelf?",
        "There are $3!=\\boxed{6}$ orders.",
        "Counting & Probability",
        "Level 2",
    ),
    (
        "What is the remainder when 17 is divided by 5?",
        "$17=3\\cdot 5+2$, so $\\boxed{2}$.",
        "Number Theory",
        "Level 1",
    ),
]

SHIPPED_FORGETTING = Path(__file__).with_name("forgetting")
SHIPPED_DOCS = 100  # per task; the demo takes the first of them (DemoPlan.forgetting_docs)


def write_demo_data(root: Path, forgetting_docs: int = SHIPPED_DOCS) -> Path:
    """Write every task's demo documents under ``root`` (the ``--data-dir`` layout): the
    handful of code and math problems above, and the first ``forgetting_docs`` real documents
    of ARC-Challenge, WinoGrande and HellaSwag that ship with evalsuite (forgetting/SOURCES.md)."""
    if not 0 < forgetting_docs <= SHIPPED_DOCS:
        raise ValueError(f"forgetting_docs must be 1..{SHIPPED_DOCS}, got {forgetting_docs}")
    _write_jsonl(root / "humaneval_plus" / "HumanEvalPlus.jsonl.gz", _code_rows())
    math_rows = [
        {"problem": p, "solution": s, "type": t, "level": lv, "idx": i}
        for i, (p, s, t, lv) in enumerate(MATH_PROBLEMS)
    ]
    _write_jsonl(root / "math" / "test.jsonl", math_rows)
    write_forgetting(SHIPPED_FORGETTING, root, forgetting_docs)
    return root


# file -> lines per document, for the fixed subset of the real data
_FORGETTING_FILES = {
    "arc_challenge/ARC-Challenge-Test.jsonl": 1,
    "arc_challenge/ARC-Challenge-Dev.jsonl": 1,
    "hellaswag/hellaswag_val_full.txt.bz2": 6,
    "winogrande/dev.jsonl": 1,
    "winogrande/dev-labels.lst": 1,
}
_SUBSET_FILES = {
    "humaneval_plus/HumanEvalPlus.jsonl.gz": 1,
    "math/test.jsonl": 1,
    **_FORGETTING_FILES,
}
# what the loaders also accept (evalsuite/tasks/lm_eval_data.py): the original HellaSwag
# jsonl, read instead of the text form when present; WinoGrande without its labels file
_HELLASWAG_JSONL = "hellaswag/hellaswag_val.jsonl"
_OPTIONAL = {"winogrande/dev-labels.lst"}


def _subset_files(source: Path, files: dict[str, int]) -> dict[str, int]:
    files = dict(files)
    if (source / _HELLASWAG_JSONL).is_file():
        del files["hellaswag/hellaswag_val_full.txt.bz2"]
        files[_HELLASWAG_JSONL] = 1
    return {n: k for n, k in files.items() if n not in _OPTIONAL or (source / n).is_file()}


def write_forgetting(source: Path, root: Path, per_task: int) -> Path:
    """The first ``per_task`` documents of the forgetting tasks' files; also how the shipped
    subset was cut (``write_forgetting(DATA_DIR, SHIPPED_FORGETTING, SHIPPED_DOCS)``)."""
    return write_subset(source, root, per_task, _FORGETTING_FILES)


def write_subset(
    source: Path, root: Path, per_task: int, files: dict[str, int] | None = None
) -> Path:
    """The first ``per_task`` documents of each real data file, in the same format."""
    for name, lines_per_doc in _subset_files(source, files or _SUBSET_FILES).items():
        src = source / name
        if not src.is_file():
            raise FileNotFoundError(
                f"{src} not found: --data-dir must hold the evaluation data in the layout "
                "described in docs/data.md"
            )
        keep = per_task * lines_per_doc
        text = _read_text(src)
        subset = "\n".join(text.split("\n")[:keep]) + "\n"
        if name == "math/test.jsonl":  # one document per subject, not the first N of one
            subset = _math_spread(text, per_task)
        _write_text(root / name, subset)
    return root


def _math_spread(text: str, per_task: int) -> str:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    seen: dict[str, int] = {}
    chosen = []
    for row in rows:
        if seen.get(row["type"], 0) < max(1, per_task // 7):
            seen[row["type"]] = seen.get(row["type"], 0) + 1
            chosen.append(row)
        if len(chosen) == per_task:
            break
    return "".join(json.dumps(r) + "\n" for r in chosen)


def _code_rows() -> list[dict[str, Any]]:
    return [{**p, "atol": 0} for p in CODE_PROBLEMS]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    elif path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    return raw.decode()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    _write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
