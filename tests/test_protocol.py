"""The protocol facts are declared once (task and suite YAML) and read from there."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from evalsuite import protocol
from evalsuite.tasks.registry import TaskRegistry

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "evalsuite" / "tasks" / "definitions"


def test_tables_and_forgetting_are_what_the_suites_declare():
    suites = yaml.safe_load((DEFINITIONS / "suites.yaml").read_text())
    tables = protocol.paper_tables()
    declared = {
        name: s["table"] for name, s in suites.items() if isinstance(s, dict) and "table" in s
    }
    assert list(tables) == list(declared) == ["code", "math"]
    for domain, table in tables.items():
        assert table.task == declared[domain]["task"] and table.title == declared[domain]["title"]
        assert [m.metric for m in table.metrics] == declared[domain]["metrics"]
    score = protocol.forgetting()
    aggregate = suites["forgetting"]["aggregate"]
    assert (score.task, score.metric) == ("forgetting", aggregate["name"])
    assert score.members == aggregate["metrics"] and score.display == aggregate["display"]


def test_every_task_declares_its_metrics_headline_first():
    for path in sorted(DEFINITIONS.glob("*.yaml")):
        if path.name == "suites.yaml":
            continue
        raw = yaml.safe_load(path.read_text())
        got = protocol.task_metrics(raw["name"])
        assert [m.metric for m in got] == [e["metric"] for e in raw["metric_list"]], path
        assert all(m.display and m.higher_is_better for m in got)


def test_metric_list_does_not_change_what_is_comparable():
    """Presentation only: not in the task config that keys comparability and the cache."""
    for spec in TaskRegistry().tasks.values():
        assert "metric_list" not in spec.config()


def test_no_module_keeps_its_own_copy_of_the_facts():
    """The forgetting recipe and the tables' metric lists appear in the YAML only."""
    copies = re.compile(r'"(hellaswag|winogrande|arc_challenge)":\s*"acc|\["pass@1",\s*"pass@10"\]')
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "evalsuite").rglob("*.py")
        if "testing" not in p.parts and copies.search(p.read_text())
    ]
    assert offenders == []
