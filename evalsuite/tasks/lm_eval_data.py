"""Local copies of the forgetting benchmarks, turned into the documents lm-eval's tasks read.

Each loader returns the splits in the schema of the public dataset lm-eval downloads
(allenai/ai2_arc, Rowan/hellaswag, allenai/winogrande), so lm-eval's own task definition
(prompt, choices, target, process_docs) runs on them unchanged. Errors name file and line.

HellaSwag's text form (context line, gold, four endings; see docs/data.md) has lost
the ctx_a / ctx_b split: the whole context goes into ctx_a and ctx_b is empty, so lm-eval's
``ctx_b.capitalize()`` cannot apply. Contexts whose ctx_b starts in lower case (most
ActivityNet rows) therefore differ from lm-eval's by that one letter; the original jsonl
(``hellaswag_jsonl``) has no such difference.
"""

from __future__ import annotations

import bz2
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalsuite.tasks.errors import TaskError

Splits = dict[str, list[dict[str, Any]]]


def _open_text(path: Path) -> str:
    if not path.is_file():
        raise TaskError(f"data file {path} does not exist (check --data-dir)")
    raw = path.read_bytes()
    if path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    elif path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}, line {number}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise TaskError(f"{path}, line {number}: expected a JSON object")
        rows.append((number, row))
    return rows


def _need(row: dict, keys: tuple[str, ...], path: Path, number: int) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise TaskError(f"{path}, line {number}: missing field(s) {missing}")


def _arc_file(path: Path) -> list[dict[str, Any]]:
    """AI2's jsonl (question.stem, question.choices[{text,label}]) -> allenai/ai2_arc rows.
    Labels stay as written, including the rows labelled 1-4."""
    docs = []
    for number, row in _jsonl(path):
        _need(row, ("id", "question", "answerKey"), path, number)
        question = row["question"]
        if not isinstance(question, dict) or "stem" not in question or "choices" not in question:
            raise TaskError(f"{path}, line {number}: 'question' needs 'stem' and 'choices'")
        labels = [c["label"] for c in question["choices"]]
        if row["answerKey"] not in labels:
            raise TaskError(
                f"{path}, line {number}: answerKey {row['answerKey']!r} not in {labels}"
            )
        docs.append(
            {
                "id": row["id"],
                "question": question["stem"],
                "choices": {"text": [c["text"] for c in question["choices"]], "label": labels},
                "answerKey": row["answerKey"],
            }
        )
    return docs


def arc_challenge(root: Path) -> Splits:
    return {
        "test": _arc_file(root / "arc_challenge" / "ARC-Challenge-Test.jsonl"),
        "validation": _arc_file(root / "arc_challenge" / "ARC-Challenge-Dev.jsonl"),
    }


def winogrande(root: Path) -> Splits:
    """WinoGrande 1.1 dev (= winogrande_xl validation); dev-labels.lst must agree."""
    path = root / "winogrande" / "dev.jsonl"
    docs = []
    for number, row in _jsonl(path):
        _need(row, ("sentence", "option1", "option2", "answer"), path, number)
        if "_" not in row["sentence"] or row["answer"] not in ("1", "2"):
            raise TaskError(f"{path}, line {number}: needs a '_' in sentence and answer 1 or 2")
        docs.append({k: row[k] for k in ("sentence", "option1", "option2", "answer")})
    labels_file = root / "winogrande" / "dev-labels.lst"
    if labels_file.is_file():
        labels = _open_text(labels_file).split()
        bad = [
            i + 1 for i, (d, x) in enumerate(zip(docs, labels, strict=False)) if d["answer"] != x
        ]
        if len(labels) != len(docs) or bad:
            raise TaskError(f"{labels_file} disagrees with {path} (lines {bad[:5]})")
    return {"validation": docs}


def hellaswag_text(root: Path) -> Splits:
    """The 6-lines-per-task text form: context, gold label, four endings."""
    path = root / "hellaswag" / "hellaswag_val_full.txt.bz2"
    lines = _open_text(path).split("\n")
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) % 6:
        raise TaskError(
            f"{path}: {len(lines)} lines is not a multiple of 6 (context, label, 4 "
            "endings per task)"
        )
    docs = []
    for i in range(0, len(lines), 6):
        context, label, endings = lines[i], lines[i + 1], lines[i + 2 : i + 6]
        if label not in ("0", "1", "2", "3"):
            raise TaskError(f"{path}, line {i + 2}: gold label {label!r} is not 0-3")
        activity, _, rest = context.partition(": ")
        docs.append(
            {
                "ind": i // 6,
                "activity_label": activity,
                "ctx_a": rest,
                "ctx_b": "",
                "ctx": rest,
                "endings": endings,
                "source_id": "",
                "split": "val",
                "split_type": "",
                "label": label,
            }
        )
    return {"validation": docs}


def hellaswag_jsonl(root: Path) -> Splits:
    """The original rowanz/hellaswag validation jsonl, when a user has it."""
    path = root / "hellaswag" / "hellaswag_val.jsonl"
    keys = ("activity_label", "ctx_a", "ctx_b", "endings", "label")
    docs = []
    for number, row in _jsonl(path):
        _need(row, keys, path, number)
        docs.append({**row, "label": str(row["label"])})
    return {"validation": docs}


def hellaswag(root: Path) -> Splits:
    """The original jsonl when present (exact), else the text form (see module docstring)."""
    if (root / "hellaswag" / "hellaswag_val.jsonl").is_file():
        return hellaswag_jsonl(root)
    return hellaswag_text(root)


LOADERS: dict[str, Callable[[Path], Splits]] = {
    "arc_challenge": arc_challenge,
    "winogrande": winogrande,
    "hellaswag": hellaswag,
}
