"""The paper's protocol facts, read from where they are declared: the task and suite YAML.

Which metrics a task reports (its headline first), their direction and display names live
in each task's ``metric_list``; which task and metrics make a domain's table (Tables 1-2)
in the suite's ``table``; the forgetting score's members in its suite's ``aggregate``.
The store, API, gate, dashboard and demo read them here instead of keeping copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from evalsuite.tasks.registry import TaskRegistry
from evalsuite.tasks.spec import MetricDecl


@dataclass(frozen=True)
class PaperTable:
    """A domain of Tables 1-2: the task whose metrics its columns show (BEST and LAST)."""

    domain: str
    title: str
    task: str
    metrics: tuple[MetricDecl, ...]  # the columns, in order; the first ranks the runs


@dataclass(frozen=True)
class Aggregate:
    """A suite-level number (the forgetting score), stored under ``task`` = its suite."""

    task: str
    metric: str
    display: str
    members: dict[str, str]  # task -> the metric averaged


@cache
def _registry() -> TaskRegistry:
    return TaskRegistry()


def task_metrics(task: str) -> tuple[MetricDecl, ...]:
    """The metrics a bundled task reports, headline first (empty for an unknown task)."""
    spec = _registry().tasks.get(task)
    return spec.metric_list if spec else ()


def metric_decl(task: str, metric: str) -> MetricDecl:
    """How a task's metric is declared; an undeclared one reads as itself, higher better."""
    found = next((m for m in task_metrics(task) if m.metric == metric), None)
    return found or MetricDecl(metric, f"{task} {metric}")


def paper_tables() -> dict[str, PaperTable]:
    """Domain (``code``, ``math``) -> its table, in the order the suites declare them."""
    registry = _registry()
    out = {}
    for domain, table in registry.tables.items():
        metrics = tuple(metric_decl(table["task"], m) for m in table["metrics"])
        out[domain] = PaperTable(domain, table["title"], table["task"], metrics)
    return out


def forgetting() -> Aggregate:
    """The forgetting score (the paper's Figure 5): the one aggregate the suites declare."""
    registry = _registry()
    (name,) = registry.aggregates  # one declared today; a second would need choosing here
    return Aggregate(
        task=registry.aggregate_suite[name],
        metric=name,
        display=registry.aggregate_display[name],
        members=dict(registry.aggregates[name]),
    )
