"""``evalsuite worker`` (the queue consumer) and ``evalsuite submit`` (a training job's call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.scoring.code.isolation import AllowBasicSandboxOption
from evalsuite.service_options import ApiOption, TokenOption, service_endpoint
from evalsuite.settings import get_settings


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        api: ApiOption = None,
        token: TokenOption = None,
        engine: Annotated[str, typer.Option(help="auto (vllm if installed), vllm or hf.")] = "auto",
        materialize: Annotated[
            str, typer.Option(help="merged (cached merge) or lora (served adapter).")
        ] = "merged",
        dtype: Annotated[
            str | None, typer.Option(help="Model dtype (default: the base's).")
        ] = None,
        data_dir: Annotated[
            Path | None, typer.Option(help="Local copies of the data (layout: docs/data.md).")
        ] = None,
        task_dir: Annotated[
            list[Path] | None, typer.Option(help="Extra directory of task YAML files.")
        ] = None,
        work_dir: Annotated[
            Path | None,
            typer.Option(
                help="Results directories, one per job (default: $EVALSUITE_WORK_DIR, else "
                "jobs/ under the cache root)."
            ),
        ] = None,
        once: Annotated[
            bool, typer.Option("--once", help="Exit when the queue is empty instead of waiting.")
        ] = False,
        max_jobs: Annotated[int | None, typer.Option(help="Exit after this many jobs.")] = None,
        lease: Annotated[float, typer.Option(help="Lease seconds, renewed by heartbeats.")] = 300.0,
        poll: Annotated[float, typer.Option(help="Seconds between claims when idle.")] = 5.0,
        worker_id: Annotated[
            str | None, typer.Option(help="Name in the queue (default: host-pid-random).")
        ] = None,
        reuse_engine: Annotated[
            bool,
            typer.Option(
                "--reuse-engine/--fresh-engine-per-job",
                help="Keep one process and engine across jobs and swap each checkpoint's "
                "weights in (default), or start both afresh for every job.",
            ),
        ] = True,
        tensor_parallel_size: Annotated[
            int,
            typer.Option(
                help="GPUs per engine (vLLM tensor parallelism); pick them with "
                "CUDA_VISIBLE_DEVICES, one worker per GPU group."
            ),
        ] = 1,
        cpus: Annotated[
            str | None,
            typer.Option(
                help="Pin the worker, its engine and its scoring to these cores (e.g. 0-3 or "
                "0,2; as taskset -c). On a CPU machine running several workers, give each "
                "its own: sharing every core slows all of them."
            ),
        ] = None,
        track: Annotated[
            list[str] | None,
            typer.Option(
                help="Also log each finished job's metrics to mlflow or wandb (repeatable; "
                "their own settings: MLFLOW_TRACKING_URI, WANDB_PROJECT, WANDB_MODE, ...; "
                "pip install 'evalsuite[trackers]')."
            ),
        ] = None,
        allow_basic_sandbox: AllowBasicSandboxOption = False,
    ) -> None:
        """Claim jobs from the service, evaluate each checkpoint, upload the results."""
        from evalsuite.worker.loop import WorkerSettings, default_worker_id, run_worker

        if cpus is not None:
            from evalsuite.worker.affinity import pin

            pin(cpus)
        settings = WorkerSettings(
            work_dir=(work_dir or get_settings().jobs_dir).resolve(),
            worker_id=worker_id or default_worker_id(),
            engine=engine,
            materialize=materialize,
            dtype=dtype,
            data_dir=data_dir,
            task_dirs=list(task_dir or []),
            lease_s=lease,
            poll_s=poll,
            reuse_engine=reuse_engine,
            tensor_parallel_size=tensor_parallel_size,
            trackers=list(track or []),
            allow_basic_sandbox=allow_basic_sandbox or get_settings().allow_basic_sandbox,
        )
        api, token = service_endpoint(api, token)
        run_worker(api, token, settings, once=once, max_jobs=max_jobs, log=_log)

    @app.command("submit")
    def submit(
        checkpoint: Annotated[Path, typer.Argument(help="Checkpoint directory to register.")],
        run: Annotated[str, typer.Option(help="Run name (one per method x rank x base).")],
        api: ApiOption = None,
        token: TokenOption = None,
        final: Annotated[bool, typer.Option("--final", help="This is the last epoch.")] = False,
        epoch: Annotated[
            float | None, typer.Option(help="Default: from trainer_state.json.")
        ] = None,
        suite: Annotated[
            list[str] | None, typer.Option(help="Suites to run (default: by the run's domain).")
        ] = None,
        limit: Annotated[
            int | None, typer.Option(help="Evaluate the first N documents only (partial).")
        ] = None,
        method: Annotated[str | None, typer.Option(help="New run: lora, rslora, rasa, ...")] = None,
        domain: Annotated[str | None, typer.Option(help="New run: code or math.")] = None,
        base_model: Annotated[str | None, typer.Option(help="New run: base model name.")] = None,
        base_model_path: Annotated[
            str | None,
            typer.Option(
                help="New run: where workers find the base: a directory or a catalog name."
            ),
        ] = None,
        train_time_s: Annotated[float | None, typer.Option(help="New run: training time.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
        base_as_epoch_0: Annotated[
            bool,
            typer.Option(
                "--base-as-epoch-0",
                help="Also register the run's base model as its epoch 0 (evaluated with no "
                "adapter; never BEST or LAST); a no-op once registered.",
            ),
        ] = False,
    ) -> None:
        """Register a checkpoint (and its run, if new); the service queues one job per suite."""
        from evalsuite.client import ApiClient
        from evalsuite.worker.submit import RunFields, submit_base, submit_checkpoint

        new_run = RunFields(
            method=method,
            domain=domain,
            base_model=base_model,
            base_model_path=base_model_path,
            train_time_s=train_time_s,
        )
        options = {"limit": limit} if limit is not None else None
        api, token = service_endpoint(api, token)
        with ApiClient(api, token=token) as client:
            answer = submit_checkpoint(
                client,
                run,
                checkpoint,
                final=final,
                epoch=epoch,
                suites=suite,
                options=options,
                new_run=new_run,
            )
            base = None
            if base_as_epoch_0:
                base = submit_base(client, run, suites=suite, options=options)
        if as_json:
            typer.echo(json.dumps(answer if base is None else {**answer, "base": base}))
            return
        for registered in (base, answer):
            if registered is None:
                continue
            ckpt, jobs = registered["checkpoint"], registered["jobs"]
            _log(
                f"checkpoint {ckpt['id']} of {run} (epoch {ckpt['epoch']:g}): "
                + (
                    ", ".join(f"job {j['id']} {j['suite']} {j['status']}" for j in jobs)
                    or "no new jobs"
                )
            )


def _log(line: str) -> None:
    typer.echo(line, err=True)
