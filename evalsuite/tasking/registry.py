"""Find tasks and suites by name: the packaged ``tasks/`` plus any extra directories."""

from __future__ import annotations

from pathlib import Path

import yaml

from evalsuite.resources import tasks_dir
from evalsuite.tasking.errors import TaskError
from evalsuite.tasking.spec import TaskSpec, parse_task


class TaskRegistry:
    def __init__(self, extra_dirs: list[Path] | None = None):
        self.dirs = [tasks_dir(), *(Path(d) for d in extra_dirs or [])]
        self.tasks: dict[str, TaskSpec] = {}
        self.suites: dict[str, list[str]] = {}
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
        for name, members in raw.items():
            if not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
                raise TaskError(f"{path}: suite {name!r} must be a list of task names")
            self.suites[name] = members

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
