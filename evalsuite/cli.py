"""The ``evalsuite`` command line. Every user-facing failure prints one clear line, no traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalsuite import __version__
from evalsuite.errors import EvalsuiteError
from evalsuite.scoring.code.isolation import AllowBasicSandboxOption

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Evaluate LoRA-family checkpoints (LoRA, rsLoRA/RoRA, RaSA, MoRA, DoRA, VeRA, ...) "
    "the way the RaSA paper does.",
)
adapter_app = typer.Typer(no_args_is_help=True, help="Inspect adapter checkpoints.")
app.add_typer(adapter_app, name="adapter")


def _mount_analysis_commands() -> None:
    """``evalsuite adapter analyze``: spectra of a checkpoint's updates."""
    from evalsuite.analysis.cli import register

    register(adapter_app)


_mount_analysis_commands()


def _mount_score_commands() -> None:
    """``evalsuite score math|humaneval-plus``: score generations made anywhere."""
    from evalsuite.scoring.cli import score_app
    from evalsuite.scoring.code.cli import register

    register(score_app)
    app.add_typer(score_app, name="score")


_mount_score_commands()


def _mount_service_commands() -> None:
    """``evalsuite db ...`` and ``evalsuite api``: the results store and its HTTP service."""
    from evalsuite.api.cli import register
    from evalsuite.store.cli import db_app

    app.add_typer(db_app, name="db")
    register(app)


_mount_service_commands()


def _mount_gate_command() -> None:
    """``evalsuite gate``: fail CI when a checkpoint is significantly worse than a baseline."""
    from evalsuite.gate.cli import register

    register(app)


_mount_gate_command()


def _mount_compare_command() -> None:
    """``evalsuite compare``: the documents that flipped between two checkpoints."""
    from evalsuite.compare.cli import register

    register(app)


_mount_compare_command()


def _mount_dashboard_command() -> None:
    """``evalsuite dashboard``: the Streamlit dashboard over the results API."""
    from evalsuite.dashboard.cli import register

    register(app)


_mount_dashboard_command()


def _mount_worker_commands() -> None:
    """``evalsuite worker`` and ``evalsuite submit``: the two ends of the queue."""
    from evalsuite.worker.cli import register

    register(app)


_mount_worker_commands()


def _mount_integrations_commands() -> None:
    """``evalsuite watch`` and ``evalsuite export``: from the training run to the trackers."""
    from evalsuite.integrations.cli import register

    register(app)


_mount_integrations_commands()


def _mount_demo_command() -> None:
    """``evalsuite demo``: the whole flow on embedded defaults (the README's first command)."""
    from evalsuite.demo.run import register

    register(app)


_mount_demo_command()


def _mount_models_commands() -> None:
    """``evalsuite models list|get``: the catalog of named base models."""
    from evalsuite.models.cli import register

    register(app)


_mount_models_commands()
err = Console(stderr=True, soft_wrap=True)

DtypeOption = Annotated[
    str | None,
    typer.Option(help="Output dtype: float32, bfloat16 or float16 (default: the base's own)."),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace --out if it already exists.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evalsuite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Evaluate LoRA-family checkpoints the way the RaSA paper does."""


@adapter_app.command("info")
def adapter_info(
    path: Annotated[Path, typer.Argument(help="Checkpoint directory (adapter or full model).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Kind, ranks, trainable parameters and epoch of a checkpoint."""
    from evalsuite.adapters import load

    info = load(path).info()
    if as_json:
        typer.echo(json.dumps(info))
        return
    table = Table(title=str(path), show_header=False)
    for key, value in info.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and value > 9999 else str(value))
    Console().print(table)


@app.command()
def merge(
    base: Annotated[Path, typer.Option(help="Base model directory (safetensors).")],
    adapter: Annotated[Path, typer.Option(help="Adapter or full fine-tune checkpoint directory.")],
    out: Annotated[Path, typer.Option(help="Output directory for the merged model.")],
    dtype: DtypeOption = None,
    overwrite: OverwriteOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Merge a checkpoint into its base: streamed shard by shard, fp32 arithmetic, atomic output."""
    from evalsuite.adapters import merge as do_merge

    out_dir = do_merge(base, adapter, out, dtype=dtype, overwrite=overwrite, progress=not quiet)
    info = json.loads((out_dir / "merge_info.json").read_text())
    err.print(
        f"merged {info['adapter_kind']} ({info['modules_merged']} modules) into {out_dir} "
        f"as {info['dtype']} in {info['seconds']:.1f} s"
    )


@app.command("export-lora")
def export_lora(
    adapter: Annotated[Path, typer.Option(help="Adapter checkpoint directory.")],
    out: Annotated[Path, typer.Option(help="Output directory for the plain LoRA.")],
    pad_to: Annotated[
        str | None,
        typer.Option(help="Zero-pad to this rank, or 'auto' for the next rank vLLM accepts."),
    ] = None,
    dtype: Annotated[str, typer.Option(help="Tensor dtype of the export.")] = "float32",
    overwrite: OverwriteOption = False,
) -> None:
    """Write an exact plain PEFT LoRA (LoRA, rsLoRA, RaSA) that vLLM and PEFT can load."""
    from evalsuite.adapters import export_lora as do_export

    out_dir = do_export(adapter, out, pad_to=pad_to, dtype=dtype, overwrite=overwrite)
    info = json.loads((out_dir / "export_info.json").read_text())
    err.print(
        f"exported {info['source_kind']} as a rank-{info['rank']} LoRA "
        f"(exact rank {info['exact_rank']}) into {out_dir}"
    )


def _split(values: list[str] | None) -> list[str] | None:
    """--tasks a,b --tasks c -> [a, b, c]"""
    if not values:
        return None
    return [name.strip() for v in values for name in v.split(",") if name.strip()]


@app.command("eval")
def eval_(
    base: Annotated[
        str, typer.Option(help="Base model directory, or a catalog name (evalsuite models list).")
    ],
    out: Annotated[Path, typer.Option(help="Results directory (reused to resume).")],
    adapter: Annotated[
        list[Path] | None,
        typer.Option(
            help="Checkpoint directory (adapter or full fine-tune); repeat it for several, "
            "evaluated in order on one engine."
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="A training run: every checkpoint-<step> in it, in training order."),
    ] = None,
    tasks: Annotated[
        list[str] | None, typer.Option(help="Task names, comma-separated or repeated.")
    ] = None,
    suite: Annotated[str | None, typer.Option(help="A suite of tasks instead of --tasks.")] = None,
    engine: Annotated[str, typer.Option(help="auto (vllm if installed), vllm or hf.")] = "auto",
    materialize: Annotated[
        str, typer.Option(help="merged (cached merge) or lora (served adapter).")
    ] = "merged",
    dtype: Annotated[
        str | None, typer.Option(help="float32, bfloat16 or float16 (default: the base's).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="First N documents per task; results marked partial.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Local copies of the data (layout: docs/data.md).")
    ] = None,
    n_samples: Annotated[int | None, typer.Option(help="Override samples per prompt.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Override the token budget.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the sampling seed.")] = None,
    num_fewshot: Annotated[
        int | None, typer.Option(help="Shots for lm-eval tasks (default: their own, 0).")
    ] = None,
    task_dir: Annotated[
        list[Path] | None, typer.Option(help="Extra directory of task YAML files.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    reuse_engine: Annotated[
        bool,
        typer.Option(
            "--reuse-engine/--fresh-engine",
            help="Several checkpoints: swap each one's weights into one running engine "
            "(default), or start an engine per checkpoint.",
        ),
    ] = True,
    tensor_parallel_size: Annotated[
        int, typer.Option(help="GPUs per engine (vLLM tensor parallelism).")
    ] = 1,
    allow_basic_sandbox: AllowBasicSandboxOption = False,
) -> None:
    """Evaluate a checkpoint (or several): a results directory with results.json and
    per-sample JSONL; for several, one under --out per checkpoint, named after it."""
    from evalsuite.evaluation.runner import EvalOptions
    from evalsuite.evaluation.series import checkpoint_series, evaluate_series
    from evalsuite.evaluation.summary import print_summary
    from evalsuite.models import resolve_base
    from evalsuite.settings import get_settings

    if (tasks is None) == (suite is None):
        raise typer.BadParameter("give exactly one of --tasks or --suite")
    series = checkpoint_series(adapter or [], run_dir, out)
    outcomes = evaluate_series(
        EvalOptions(
            base=resolve_base(base),
            out=out,
            tasks=_split(tasks),
            suite=suite,
            engine=engine,
            materialize=materialize,
            dtype=dtype,
            limit=limit,
            data_dir=data_dir,
            n_samples=n_samples,
            max_new_tokens=max_new_tokens,
            seed=seed,
            num_fewshot=num_fewshot,
            task_dirs=task_dir or [],
            progress=not quiet,
            tensor_parallel_size=tensor_parallel_size,
            allow_basic_sandbox=allow_basic_sandbox or get_settings().allow_basic_sandbox,
        ),
        series,
        reuse_engine=reuse_engine,
    )
    for results, results_dir in outcomes:
        print_summary(results, results_dir)


@app.command("tasks")
def list_tasks(
    task_dir: Annotated[
        list[Path] | None, typer.Option(help="Extra directory of task YAML files.")
    ] = None,
) -> None:
    """List the tasks and suites that --tasks / --suite accept."""
    from evalsuite.tasks.registry import TaskRegistry

    registry = TaskRegistry(task_dir or [])
    table = Table(title="tasks")
    for column in ("name", "kind", "samples", "scorer", "description"):
        table.add_column(column)
    for spec in registry.tasks.values():
        s = spec.sampling
        samples = f"n={s.n} T={s.temperature:g}" if spec.kind == "generate" else "-"
        table.add_row(
            spec.name, spec.kind, samples, spec.scorer or "acc/acc_norm", spec.description
        )
    Console().print(table)
    for name, members in registry.suites.items():
        Console().print(f"suite {name}: {', '.join(members)}")


@app.command("make-example")
def make_example(
    out: Annotated[Path, typer.Argument(help="Directory to write into.")] = Path("example"),
) -> None:
    """Write a tiny local base model, LoRA / rsLoRA / RaSA / MoRA runs (3 epochs each) and two
    small tasks (suite 'tiny').

    Nothing is downloaded: try every command on these before pointing them at real models.
    """
    import shutil

    from evalsuite.testing.checkpoints import EXAMPLE_TASKS, write_example_runs
    from evalsuite.testing.tiny_model import build_tiny_llama

    base = out / "base"
    if not (base / "config.json").exists():
        build_tiny_llama(base)
    runs = write_example_runs(out, base)
    shutil.copytree(EXAMPLE_TASKS, out / "tasks", dirs_exist_ok=True)
    err.print(f"tiny base model: {base}")
    err.print(f"  tasks (--task-dir): {out / 'tasks'} (suite 'tiny')")
    for method, checkpoints in runs.items():
        err.print(f"{method:>7}: {', '.join(str(c) for c in checkpoints)}")


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except EvalsuiteError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
