"""The demo's runs: short LoRA, rsLoRA and RaSA fine-tunes of the real base, per domain.

Code runs train on standard-library docstring-to-body pairs, math runs on MATH problems
outside MATH-500 (evalsuite.training.datasets), so the two domains' checkpoints differ. Each
run is trained once under the demo directory; a run stopped half-way is trained again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from evalsuite.training import TrainSettings, checkpoints, finetune
from evalsuite.training.datasets import examples
from evalsuite.training.finetune import finished


@dataclass(frozen=True)
class TrainedRun:
    method: str
    domain: str
    settings: TrainSettings
    checkpoints: list[Path]
    train_s: float


def train_runs(
    root: Path,
    base: Path,
    methods: tuple[str, ...],
    domains: tuple[str, ...],
    settings: dict[str, object],
    train_examples: int,
    console: Console,
) -> list[TrainedRun]:
    """Train (or find trained) every (method, domain) run under ``root/runs``."""
    runs = []
    for domain in domains:
        pairs = examples(domain, train_examples)
        for method in methods:
            chosen = TrainSettings(method=method, **settings)  # type: ignore[arg-type]
            run_dir = root / "runs" / domain / method
            if finished(run_dir, base, pairs, chosen) is None:
                console.print(
                    f"training {method} on {len(pairs)} {domain} examples, "
                    f"{chosen.epochs} epochs (r={chosen.r})"
                )
                finetune(base, run_dir, pairs, chosen)
            record = finished(run_dir, base, pairs, chosen)
            assert record is not None  # finetune wrote it or raised
            runs.append(TrainedRun(method, domain, chosen, checkpoints(run_dir), record["train_s"]))
    return runs
