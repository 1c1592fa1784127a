"""Find tasks and suites by name: the shipped ``definitions/`` plus any extra directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalsuite.tasks import definitions_dir
from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.spec import TaskSpec, parse_task


class TaskRegistry:
    def __init__(self, extra_dirs: list[Path] | None = None):
        self.dirs = [definitions_dir(), *(Path(d) for d in extra_dirs or [])]
        self.tasks: dict[str, TaskSpec] = {}
        self.suites: dict[str, list[str]] = {}
        # aggregate name -> {task: metric}: a suite-level number, e.g. the forgetting score
        self.aggregates: dict[str, dict[str, str]] = {}
        self.aggregate_suite: dict[str, str] = {}  # aggregate name -> the suite declaring it
        self.aggregate_display: dict[str, str] = {}
        # suite -> its table of the paper ({title, task, metrics}): a domain of Tables 1-2
        self.tables: dict[str, dict[str, Any]] = {}
        for d in self.dirs:
            if not d.is_dir():
                raise TaskError(f"task directory {d} does not exist")
            for path in sorted(d.glob("*.yaml")):
                if path.name == "suites.yaml":
                    self._add_suites(path)
                    continue
                spec = parse_task(path)
                if spec.name in self.tasks:
                    raise TaskError(
                        f"{path}: task {spec.name!r} is already defined in "
                        f"{self.tasks[spec.name].source}"
                    )
                self.tasks[spec.name] = spec

    def _add_suites(self, path: Path) -> None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise TaskError(f"{path}: not readable YAML ({e})") from e
        for name, entry in raw.items():
            members = entry.get("tasks") if isinstance(entry, dict) else entry
            if not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
                raise TaskError(
                    f"{path}: suite {name!r} must be a list of task names, or a mapping with "
                    "'tasks' (and optionally 'aggregate: {name, metrics: {task: metric}}')"
                )
            self.suites[name] = members
            if isinstance(entry, dict):
                self._add_aggregate(path, name, entry.get("aggregate"), members)
                self._add_table(path, name, entry.get("table"), members)

    def _add_aggregate(self, path: Path, suite: str, aggregate: Any, members: list[str]) -> None:
        if aggregate is None or isinstance(aggregate, str):  # a name: another suite's, reused
            if aggregate is not None and aggregate not in self.suites:
                raise TaskError(f"{path}: suite {suite!r} reuses the aggregate of unknown suite "
                                f"{aggregate!r} (declare that suite first)")  # fmt: skip
            return
        metrics = aggregate.get("metrics") if isinstance(aggregate, dict) else None
        if not (
            isinstance(metrics, dict)
            and set(metrics) <= set(members)
            and isinstance(aggregate.get("name"), str)
            and isinstance(aggregate.get("display", ""), str)
        ):
            raise TaskError(f"{path}: suite {suite!r} has a malformed 'aggregate'")
        self.aggregates[aggregate["name"]] = dict(metrics)
        self.aggregate_suite[aggregate["name"]] = suite
        self.aggregate_display[aggregate["name"]] = aggregate.get("display") or aggregate["name"]

    def _add_table(self, path: Path, suite: str, table: Any, members: list[str]) -> None:
        if table is None:
            return
        if not (
            isinstance(table, dict)
            and table.get("task") in members
            and isinstance(table.get("title"), str)
            and isinstance(table.get("metrics"), list)
            and all(isinstance(m, str) for m in table["metrics"])
        ):
            raise TaskError(f"{path}: suite {suite!r} has a malformed 'table' "
                            "(needs title, task (one of its tasks) and metrics)")  # fmt: skip
        self.tables[suite] = dict(table)

    def aggregates_of(self, task_results: dict) -> dict:
        """Each aggregate whose tasks all ran: the plain mean of the named metrics."""
        out = {}
        for name, metrics in self.aggregates.items():
            if not all(
                t in task_results and m in task_results[t]["metrics"] for t, m in metrics.items()
            ):
                continue
            parts = {t: task_results[t]["metrics"][m]["value"] for t, m in metrics.items()}
            out[name] = {
                "value": sum(parts.values()) / len(parts),
                "metrics": metrics,
                "parts": parts,
                "partial": any(task_results[t]["partial"] for t in metrics),
            }
        return out

    def resolve(self, names: list[str] | None = None, suite: str | None = None) -> list[TaskSpec]:
        """Tasks by name or a suite's tasks, in order; unknown names list the known ones."""
        if suite is not None:
            if suite not in self.suites:
                known = ", ".join(sorted(self.suites)) or "none"
                raise TaskError(f"unknown suite {suite!r}; known suites: {known}")
            names = self.suites[suite]
        if not names:
            raise TaskError("no tasks given: use --tasks NAME[,NAME...] or --suite NAME")
        missing = [n for n in names if n not in self.tasks]
        if missing:
            raise TaskError(
                f"unknown task(s) {', '.join(missing)}; known tasks: "
                f"{', '.join(sorted(self.tasks)) or 'none'}"
            )
        return [self.tasks[n] for n in dict.fromkeys(names)]
