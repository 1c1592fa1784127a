"""A real LoRA fine-tune of SmolLM2-135M-Instruct whose every epoch is scored by a running
evalsuite service, without the training waiting on it.

Three commands (the README's "From the training loop to the leaderboard"):

    export EVALSUITE_API_TOKEN=secret
    evalsuite db upgrade && evalsuite api &            # the service, SQLite by default
    evalsuite worker --data-dir data/ --track mlflow & # scores each checkpoint (docs/data.md)
    python examples/finetune_lora.py --run smollm2-lora --limit 5

The model comes from evalsuite's catalog (``evalsuite models get smollm2-135m-instruct``,
fetched once); the training set is the one evalsuite ships for the domain (stdlib
docstring-to-body pairs for code, 300 MATH problems outside MATH-500 for math); training is
``evalsuite.training.finetune`` (HF ``Trainer``, one checkpoint per epoch). The callback
registers each checkpoint as it is saved and marks the last one final; ``--limit`` scores the
first N problems of each task only (partial scores: quick, but never BEST/LAST).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evalsuite.integrations.transformers import EvalsuiteCallback
from evalsuite.models import resolve_base
from evalsuite.training import METHODS, TrainSettings, finetune
from evalsuite.training.datasets import examples

BASE = "smollm2-135m-instruct"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="run name in the service")
    parser.add_argument("--method", choices=METHODS, default="lora")
    parser.add_argument("--domain", choices=("code", "math"), default="code")
    parser.add_argument("--base", default=BASE, help="a catalog name or a model directory")
    parser.add_argument("--out", type=Path, help="output directory (default: runs/RUN)")
    parser.add_argument("--examples", type=int, default=64, help="training examples")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--suite", action="append", help="suites (default: by the domain)")
    parser.add_argument("--limit", type=int, help="score the first N problems per task only")
    parser.add_argument("--api", help="default: $EVALSUITE_API_URL, else http://127.0.0.1:8000")
    parser.add_argument("--token", help="default: $EVALSUITE_API_TOKEN")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    base = resolve_base(args.base)
    out = args.out or Path("runs") / args.run
    callback = EvalsuiteCallback(
        args.run,
        domain=args.domain,
        method=args.method,
        base_model=args.base if args.base == BASE else base.name,
        base_model_path=args.base if args.base == BASE else str(base.resolve()),
        suites=args.suite,
        limit=args.limit,
        api=args.api,
        token=args.token,
    )
    settings = TrainSettings(method=args.method, r=args.r, alpha=2.0 * args.r, epochs=args.epochs)
    saved = finetune(base, out, examples(args.domain, args.examples), settings, [callback])
    if callback.sender is None:  # finetune found this run trained already: nothing was saved
        print(
            f"{out} is trained already; register its checkpoints with: evalsuite watch {out} "
            f"--run {args.run} --once --final-on-exit",
            file=sys.stderr,
        )
        return 0
    # the last checkpoint is sent twice (saved, then marked final): its later answer counts
    latest = {a["checkpoint"]["id"]: a for a in callback.sender.delivered}
    for answer in latest.values():
        ckpt = answer["checkpoint"]
        jobs = ", ".join(f"job {j['id']} {j['suite']}" for j in answer["jobs"])
        print(f"epoch {ckpt['epoch']:g} step {ckpt['step']}: checkpoint {ckpt['id']} ({jobs})")
    left = callback.sender.pending()
    print(f"{len(saved)} checkpoint(s) saved, {len(left)} still to send", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
