"""Where ``evalsuite demo``'s time goes, read from a finished demo directory.

    .venv/bin/evalsuite demo --no-serve --dir /tmp/demo      # timed as a whole by the caller
    .venv/bin/python bench/demo_stages.py /tmp/demo [--quick]

Prints each run's training time and tokens per second (tokens: prompt + response + EOS of
every example, cut at the plan's max_length, times the epochs, counted with the base's
tokenizer) and each job's time split into its stages (engine start or swap, generation per
task, lm-eval per forgetting task), from the results.json files the workers wrote. The
machine's load average is printed beside them: on a shared machine the figures are slower
than on a quiet one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(root: Path, quick: bool) -> None:
    from transformers import AutoTokenizer

    from evalsuite.demo.run import BASE_MODEL, DemoPlan
    from evalsuite.models import resolve_base
    from evalsuite.training.datasets import examples

    plan = DemoPlan.quick() if quick else DemoPlan()
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(BASE_MODEL))
    print(f"load average now: {os.getloadavg()}")
    print("training (run, seconds, tokens, tokens/s):")
    total_train = 0.0
    for done in sorted(root.glob("runs/*/*/training-done.json")):
        record = json.loads(done.read_text())
        domain = done.parent.parent.name
        pairs = examples(domain, plan.train_examples)
        per_epoch = sum(
            min(plan.max_length, len(tokenizer(p)["input_ids"]) + len(tokenizer(r)["input_ids"]))
            for p, r in pairs
        )
        tokens = per_epoch * plan.epochs
        seconds = record["train_s"]
        total_train += seconds
        name = f"{done.parent.name}-{domain}"
        print(f"  {name:12} {seconds:7.1f} s {tokens:7d} tok {tokens / seconds:7.1f} tok/s")
    print(f"  all runs: {total_train:.0f} s")
    print("jobs (stage seconds):")
    for results in sorted(root.glob("jobs/*/**/results.json")):
        data = json.loads(results.read_text())
        stages = {k: v for k, v in data.get("timings", {}).items() if k != "total_s"}
        for task, entry in data.get("tasks", {}).items():
            for key, value in entry.get("timings", {}).items():
                stages[f"{task}.{key}"] = value
        shown = ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if v >= 0.05)
        print(f"  {results.parent.name}: total {data['timings']['total_s']:.1f} ({shown})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--quick" in sys.argv[2:])
