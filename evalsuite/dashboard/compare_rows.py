"""The Compare page's tables, as plain functions of the ``GET /v1/compare`` report and of
sample rows (the page itself stays thin, and these are tested without Streamlit).

How a checkpoint's answer to one document is shown depends on the task (a registry,
``ANSWERS``): generated code with its status and first failing input (HumanEval+), the
response with the extracted answer, the gold answer and both grades (MATH), the ending each
rule chose for multiple choice (lm-eval tasks: ``acc`` takes the highest log-likelihood,
``acc_norm`` the highest per byte of the ending, as lm-eval does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evalsuite.dashboard.records import clip, detail


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def flip_rows(task: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per flipped document: which way it went and its values on both sides."""
    rows = []
    for change in ("lost", "gained"):
        for item in task.get(change) or []:
            rows.append(
                {
                    "doc_id": item["doc_id"],
                    "change": "solved -> failed" if change == "lost" else "failed -> solved",
                    "A": ", ".join(f"{m} {_fmt(v)}" for m, v in item["a"].items()),
                    "B": ", ".join(f"{m} {_fmt(v)}" for m, v in item["b"].items()),
                }
            )
    return rows


def metric_rows(task: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric: A, B and B - A in points with the gate's interval, or why not."""
    rows = []
    for m in task.get("metrics") or []:
        p, r = m.get("points"), m.get("result")
        if p is None or r is None:
            rows.append({"metric": m["metric"], "A": None, "B": None, "B - A": None,
                         "interval": m.get("reason"), "p": None})  # fmt: skip
            continue
        rows.append(
            {
                "metric": m["metric"],
                "A": round(p["baseline"], 2),
                "B": round(p["candidate"], 2),
                "B - A": round(p["diff"], 2),
                "interval": f"[{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]",
                "p": round(r["p_value"], 3),
            }
        )
    return rows


def _code_answer(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "fields": {
            "status": detail(record, "status"),
            "failed split": detail(record, "failed_split"),
            "failing input": clip(detail(record, "failed_input")),
        },
        "text": record.get("completion"),
        "language": "python",
    }


def _math_answer(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "fields": {
            "extracted": detail(record, "extracted"),
            "gold": detail(record, "gold"),
            "paper grade": detail(record, "paper"),
            "robust grade": detail(record, "robust"),
        },
        "text": record.get("completion"),
        "language": "latex",
    }


def _argmax(values: list[float]) -> int | None:
    return max(range(len(values)), key=values.__getitem__) if values else None


def _choice_answer(record: dict[str, Any]) -> dict[str, Any]:
    choices = detail(record, "choices") or []
    lls = detail(record, "loglikelihoods") or []
    target = detail(record, "target")
    per_byte = [ll / max(len(c.encode()), 1) for ll, c in zip(lls, choices, strict=False)]

    def ending(i: int | None) -> str | None:
        return choices[i] if i is not None and isinstance(i, int) and i < len(choices) else None

    return {
        "fields": {
            "chosen (acc)": ending(_argmax(lls)),
            "chosen (acc_norm)": ending(_argmax(per_byte)),
            "right ending": ending(target),
            "acc": detail(record, "acc"),
            "acc_norm": detail(record, "acc_norm"),
        },
        "text": detail(record, "context"),
        "language": None,
    }


# task -> how one sample row is shown; any other task is shown as multiple choice
ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "humaneval_plus": _code_answer,
    "math": _math_answer,
}


def answer_view(task: str, record: dict[str, Any]) -> dict[str, Any]:
    """``{fields: {label: value}, text, language}`` for one sample row of ``task``."""
    return ANSWERS.get(task, _choice_answer)(record)


def lost_rows(report: dict[str, Any], members: dict[str, str]) -> list[dict[str, Any]]:
    """The forgetting items: per member task (task -> its metric) the documents solved by
    ``a`` (the base, epoch 0) and lost by ``b`` (the checkpoint), with both values."""
    rows = []
    for t in report.get("tasks", []):
        metric = members.get(t["task"])
        if metric is None:
            continue
        for item in t.get("lost") or []:
            rows.append(
                {
                    "task": t["task"],
                    "doc_id": item["doc_id"],
                    "metric": metric,
                    "base": item["a"].get(metric),
                    "checkpoint": item["b"].get(metric),
                }
            )
    return rows
