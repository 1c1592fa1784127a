"""``evalsuite watch`` (register a training run's checkpoints as they appear) and
``evalsuite export`` (a run's stored scores into MLflow or W&B)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.service_options import ApiOption, TokenOption, service_endpoint


def _log_to_stderr() -> None:
    """The integrations' log lines (``evalsuite.integrations``) on stderr, one per event."""
    logger = logging.getLogger("evalsuite.integrations")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch(
        run_dir: Annotated[
            Path, typer.Argument(help="The training's output directory (its checkpoint-*).")
        ],
        run: Annotated[str, typer.Option(help="Run name to register the checkpoints under.")],
        suite: Annotated[
            list[str] | None, typer.Option(help="Suites to run (default: by the run's domain).")
        ] = None,
        method: Annotated[
            str | None, typer.Option(help="New run: lora, rslora, rasa, ... (default: the kind).")
        ] = None,
        domain: Annotated[str | None, typer.Option(help="New run: code or math.")] = None,
        base_model: Annotated[
            str | None,
            typer.Option(help="New run: base model name (default: the adapter config's)."),
        ] = None,
        base_model_path: Annotated[
            str | None,
            typer.Option(help="New run: where workers find the base (default: as base model)."),
        ] = None,
        limit: Annotated[
            int | None, typer.Option(help="Evaluate the first N documents only (partial).")
        ] = None,
        api: ApiOption = None,
        token: TokenOption = None,
        final_on_exit: Annotated[
            bool,
            typer.Option(
                "--final-on-exit",
                help="When the watch ends (Ctrl-C, SIGTERM, --once), mark the checkpoint of "
                "the highest step final (LAST).",
            ),
        ] = False,
        settle: Annotated[
            float, typer.Option(help="Seconds a checkpoint's files must stay unchanged.")
        ] = 5.0,
        poll: Annotated[float, typer.Option(help="Seconds between looks at RUN_DIR.")] = 1.0,
        once: Annotated[
            bool,
            typer.Option(
                "--once",
                help="Register the checkpoints there now (once settled), send, and exit.",
            ),
        ] = False,
    ) -> None:
        """Register every checkpoint-* of RUN_DIR once it is complete, for training code that
        cannot take the callback; also sends what a callback left in RUN_DIR's spool."""
        from evalsuite.client import ApiClient
        from evalsuite.integrations.watch import Watcher, WatchSpec

        _log_to_stderr()
        api, token = service_endpoint(api, token)
        spec = WatchSpec(
            run_dir=run_dir.resolve(),
            run=run,
            suites=suite,
            options={"limit": limit} if limit is not None else {},
            new_run={
                "method": method,
                "domain": domain,
                "base_model": base_model,
                "base_model_path": base_model_path,
            },
            settle_s=settle,
            poll_s=poll,
            final_on_exit=final_on_exit,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        watcher = Watcher(spec, lambda: ApiClient(api, token=token, timeout=10.0))
        left = watcher.run(stop, once=once)
        raise typer.Exit(1 if left or watcher.sender.refused else 0)

    @app.command("export")
    def export(
        run: Annotated[list[str], typer.Option(help="Run to export (repeatable).")],
        to: Annotated[list[str], typer.Option(help="mlflow or wandb (repeatable).")],
        api: ApiOption = None,
        token: TokenOption = None,
    ) -> None:
        """Log the scores the service stored for each checkpoint of RUN into MLflow or W&B, at
        the checkpoint's global step (their settings: MLFLOW_TRACKING_URI, WANDB_PROJECT, ...)."""
        from evalsuite.client import ApiClient
        from evalsuite.integrations.trackers import from_service, make_tracker

        trackers = {name: make_tracker(name) for name in dict.fromkeys(to)}
        api, token = service_endpoint(api, token)
        with ApiClient(api, token=token) as client:
            for name in run:
                scores = from_service(client, name)
                for where, tracker in trackers.items():
                    new = tracker.log(scores)
                    typer.echo(
                        f"{name}: {new} of {len(scores)} scored checkpoint(s) logged to {where}",
                        err=True,
                    )
