"""Several checkpoints of a run on one engine: ``evalsuite eval --adapter A --adapter B``
or ``--run-dir RUN``.

The checkpoints are evaluated in order through one ``EngineSlot``, so the engine starts once
and each next checkpoint's weights are swapped into it, exactly as the queue worker does;
``--fresh-engine`` starts one per checkpoint instead. Each checkpoint gets its own results
directory under ``--out``, named after the checkpoint's directory.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalsuite.adapters.base import run_checkpoints
from evalsuite.engines.slot import EngineSlot
from evalsuite.errors import EvalsuiteError
from evalsuite.evaluation.runner import EvalOptions, evaluate


class SeriesError(EvalsuiteError, ValueError):
    """The checkpoints to evaluate cannot be told apart or were not found."""


def checkpoint_series(
    adapters: list[Path], run_dir: Path | None, out: Path
) -> list[tuple[Path | None, Path]]:
    """(checkpoint, results directory) pairs: one checkpoint (or the base alone) writes to
    ``out`` itself, several to ``out/<checkpoint directory name>``."""
    if run_dir is not None:
        if adapters:
            raise SeriesError("give --adapter or --run-dir, not both")
        if not Path(run_dir).is_dir():
            raise SeriesError(f"--run-dir {run_dir}: no such directory")
        adapters = run_checkpoints(run_dir)
        if not adapters:
            raise SeriesError(
                f"--run-dir {run_dir} holds no checkpoint-<step> directory (a Trainer writes "
                "them with save_strategy='epoch'); give checkpoints with --adapter instead"
            )
    if not adapters:
        return [(None, out)]
    if len(adapters) == 1:
        return [(adapters[0], out)]
    twice = sorted(name for name, n in Counter(a.name for a in adapters).items() if n > 1)
    if twice:
        raise SeriesError(
            f"two checkpoints are named {twice[0]!r}, so their results directories under "
            f"{out} would collide: evaluate them with separate --out directories"
        )
    return [(adapter, out / adapter.name) for adapter in adapters]


def evaluate_series(
    opts: EvalOptions,
    series: list[tuple[Path | None, Path]],
    reuse_engine: bool = True,
) -> list[tuple[dict[str, Any], Path]]:
    """Each checkpoint's results (as ``evaluate`` returns them) and its directory, in order."""
    slot = EngineSlot(
        keep=reuse_engine, stall_s=opts.stall_s, log=lambda line: print(line, file=sys.stderr)
    )
    done = []
    try:
        for adapter, out in series:
            done.append((evaluate(replace(opts, adapter=adapter, out=out), slot), out))
    finally:
        slot.close()
    return done
