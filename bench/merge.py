"""Benchmark ``evalsuite merge`` against PEFT's merge and a plain copy of the base's shards.

What is measured, on a synthetic Llama-shaped base of about 1B parameters (bf16, sharded
safetensors, cached in the workdir so a second run skips building it):

* ``peft lora``: transformers ``from_pretrained`` + PEFT ``merge_and_unload`` +
  ``save_pretrained``, the route people use today (PEFT cannot load RaSA, so LoRA only);
* ``evalsuite lora`` / ``evalsuite rasa``: ``evalsuite.adapters.merge``, which streams the
  base tensor by tensor;
* ``copy shards``: ``shutil.copyfile`` of every shard, the I/O floor any merge has to pay.

Each run is a fresh subprocess, so its peak RSS (``VmHWM``, the process's own high-water mark,
which a new process starts afresh) is that route's alone. Wall time is timed inside the child
after its imports, so it measures the merge, not Python's start-up; the process wall time is
reported beside it. The page cache cannot be dropped without root, so the base is read once
before any timing and every route sees it warm; ``sync`` runs between runs so one run's
write-back does not land in the next one's timing. Each route runs ``--repeats`` times (2):
best wall time, largest peak RSS. Routes alternate (one run of each per round), so a change
in the machine's load hits all of them; every run's wall time, CPU time (user+sys of the
child after its imports, all threads, kernel-side copying included) and the 1-minute load
average before it are recorded, since on a shared machine wall time follows the load.

Goals (printed as PASS/MISS, never asserted, since timings depend on the machine):
PEFT time / evalsuite time >= 2, evalsuite RSS / PEFT RSS <= 0.25, evalsuite time / copy
time <= 2. The figures go to the "merge" section of bench/RESULTS.md.

    python bench/merge.py [--params 1e9] [--workdir bench/_work] [--repeats 2] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from results_md import replace_section

if TYPE_CHECKING:
    from transformers import LlamaConfig, PreTrainedTokenizerBase

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
SECTION_TITLE = "## merge (bench/merge.py)"
SHARD_BYTES = 500 * 10**6  # several shards, like a real checkpoint
INIT_STD = 0.02
LORA_RANK, LORA_ALPHA = 16, 32
RASA_RANK, RASA_K = 16, 2
MIN_SPEEDUP, MAX_RSS_RATIO, MAX_COPY_RATIO = 2.0, 0.25, 2.0


@dataclass(frozen=True)
class LlamaShape:
    """The dimensions of the synthetic base; only the layer count follows ``--params``."""

    layers: int
    hidden: int = 2048
    intermediate: int = 5632
    vocab: int = 32000
    heads: int = 16
    kv_heads: int = 4
    head_dim: int = 128

    @classmethod
    def for_params(cls, params: float) -> LlamaShape:
        """As many layers as bring the total closest to ``params`` (at least one)."""
        probe = cls(layers=0)
        per_layer = cls(layers=1).params - probe.params
        return cls(layers=max(1, round((params - probe.params) / per_layer)))

    @property
    def params(self) -> int:
        """Parameter count of an untied Llama of this shape, norms included."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        attn = 2 * h * self.heads * self.head_dim + 2 * h * kv
        per_layer = attn + 3 * h * self.intermediate + 2 * h
        return 2 * self.vocab * h + h + self.layers * per_layer


@dataclass(frozen=True)
class Route:
    """One measured way of producing a merged model: a label, a child mode and its adapter."""

    label: str
    mode: str
    adapter: Path | None


@dataclass(frozen=True)
class Timing:
    """One run (or the best of several): merge wall and CPU time, process wall time, peak
    RSS, and the load average before the run."""

    wall_s: float
    process_s: float
    rss_mb: float
    cpu_s: float = 0.0
    load: float = 0.0


@dataclass(frozen=True)
class RouteResult:
    """All runs of a route; the best of them is what the goals are judged on."""

    runs: list[Timing]

    @property
    def best(self) -> Timing:
        """Fastest times (noise only ever adds time), largest peak RSS (the real need)."""
        return Timing(
            min(t.wall_s for t in self.runs),
            min(t.process_s for t in self.runs),
            max(t.rss_mb for t in self.runs),
            min(t.cpu_s for t in self.runs),
        )


# -- building the inputs -------------------------------------------------------------------


def _tensor_shapes(shape: LlamaShape) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes exactly as transformers saves this Llama (built on meta)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(_llama_config(shape))
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _llama_config(
    shape: LlamaShape, tokenizer: PreTrainedTokenizerBase | None = None
) -> LlamaConfig:
    """The transformers config of ``shape``, with the tokenizer's special ids when given."""
    from transformers import LlamaConfig

    special = {}
    if tokenizer is not None:
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    return LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=False,
        dtype="bfloat16",
        **special,
    )


def _plan_shards(shapes: dict[str, tuple[int, ...]]) -> list[list[str]]:
    """Greedy split into shards of at most SHARD_BYTES (bf16), in state-dict order."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, dims in shapes.items():
        nbytes = 2 * math.prod(dims)
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def _write_shards(directory: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Random bf16 weights written shard by shard: at most one shard (~500 MB) in memory."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    plan = _plan_shards(shapes)
    weight_map = {}
    for i, names in enumerate(plan, start=1):
        file = f"model-{i:05d}-of-{len(plan):05d}.safetensors"
        tensors = {}
        for name in names:
            if name.endswith("norm.weight"):
                tensors[name] = torch.ones(shapes[name], dtype=torch.bfloat16)
            else:
                t = torch.randn(shapes[name], generator=g, dtype=torch.bfloat16)
                tensors[name] = t.mul_(INIT_STD)
            weight_map[name] = file
        save_file(tensors, directory / file, metadata={"format": "pt"})
    total = sum(2 * math.prod(dims) for dims in shapes.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def ensure_base(workdir: Path, shape: LlamaShape) -> Path:
    """The cached base for ``shape``, built (atomically) only when missing or stale.

    A spec file written last marks a complete build, so an interrupted one is rebuilt.
    """
    from evalsuite.testing.tiny_model import build_tokenizer

    base = workdir / f"base-llama-{shape.layers}L"
    spec_file = base / "bench_spec.json"
    if spec_file.is_file() and json.loads(spec_file.read_text()) == asdict(shape):
        print(f"reusing cached base {base}")
        return base
    print(f"building a {shape.params / 1e9:.2f}B-parameter bf16 base in {base} ...")
    started = time.perf_counter()
    tmp = workdir / f".{base.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = build_tokenizer(tmp)
    _llama_config(shape, tokenizer).save_pretrained(tmp)
    _write_shards(tmp, _tensor_shapes(shape))
    (tmp / "bench_spec.json").write_text(json.dumps(asdict(shape)))
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    print(f"  built in {time.perf_counter() - started:.0f} s")
    return base


def write_adapters(workdir: Path, base: Path) -> dict[str, Path]:
    """A LoRA and a RaSA for ``base``, in bf16 as training leaves them (cheap: rebuilt each run)."""
    import torch

    from evalsuite.testing.checkpoints import write_lora, write_rasa
    from evalsuite.testing.tiny_model import TARGET_MODULES

    root = workdir / "adapters"
    shutil.rmtree(root, ignore_errors=True)
    lora = write_lora(
        root / "lora", base, TARGET_MODULES, r=LORA_RANK, alpha=LORA_ALPHA, dtype=torch.bfloat16
    )
    rasa = write_rasa(
        root / "rasa", base, TARGET_MODULES, r=RASA_RANK, k=RASA_K, dtype=torch.bfloat16
    )
    return {"lora": lora, "rasa": rasa}


def warm_page_cache(base: Path) -> None:
    """Read every base file once so that no route pays for the cold read the others skip."""
    for path in sorted(base.iterdir()):
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


# -- the child side: one route, one run ------------------------------------------------------


def prepare_peft(base: Path, adapter: Path | None, out: Path) -> Callable[[], None]:
    """Import transformers and PEFT now (untimed); return the timed load-merge-save."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def run() -> None:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        merged.save_pretrained(out)

    return run


def prepare_evalsuite(base: Path, adapter: Path | None, out: Path) -> Callable[[], None]:
    """Import evalsuite (and torch) now; return the timed streaming merge."""
    from evalsuite.adapters import merge

    return lambda: merge(base, adapter, out, progress=False)


def prepare_copy(base: Path, adapter: Path | None, out: Path) -> Callable[[], None]:
    """The shards copied as they are: the least I/O a merge can do."""

    def run() -> None:
        out.mkdir(parents=True)
        for shard in sorted(base.glob("*.safetensors")):
            shutil.copyfile(shard, out / shard.name)

    return run


MODES: dict[str, Callable[[Path, Path | None, Path], Callable[[], None]]] = {
    "peft": prepare_peft,
    "evalsuite": prepare_evalsuite,
    "copy": prepare_copy,
}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): its own, unlike a parent's RUSAGE_CHILDREN."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_main(mode: str, base: Path, adapter: Path | None, out: Path) -> None:
    """Run one route once and print its wall time and peak RSS as one JSON line."""
    run = MODES[mode](base, adapter, out)
    started, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "rss_mb": peak_rss_mb()}))


# -- the parent side: repeat, tabulate, record -------------------------------------------


def run_once(route: Route, base: Path, out: Path) -> Timing:
    """One fresh child process for ``route``, after clearing and syncing away earlier output."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--route", route.mode]
    cmd += ["--base", str(base), "--out", str(out)]
    if route.adapter is not None:
        cmd += ["--adapter", str(route.adapter)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    process_s = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"route {route.label!r} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Timing(result["wall_s"], process_s, result["rss_mb"], result["cpu_s"], load)


def measure(
    routes: list[Route], base: Path, out_root: Path, repeats: int
) -> dict[str, RouteResult]:
    """``repeats`` rounds of one fresh run per route, alternating, each printed as it ends."""
    runs: dict[str, list[Timing]] = {r.label: [] for r in routes}
    for i in range(1, repeats + 1):
        for route in routes:
            t = run_once(route, base, out_root / route.label.replace(" ", "-"))
            print(f"  round {i} {route.label:<15} {t.wall_s:6.1f} s wall, {t.cpu_s:6.1f} s CPU, "
                  f"{t.rss_mb:7.0f} MB, load {t.load:.1f}", flush=True)  # fmt: skip
            runs[route.label].append(t)
    return {label: RouteResult(ts) for label, ts in runs.items()}


def timing_table(results: dict[str, RouteResult]) -> str:
    """The per-route figures as a Markdown table (also readable as plain text).

    Every run's wall time is listed: on a VM the spread between runs can be large.
    """
    lines = [
        "| route | wall s (best) | wall s (each round) | CPU s (least) | CPU s (each round) | "
        "load before each | process s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result in results.items():
        t = result.best
        each = ", ".join(f"{r.wall_s:.1f}" for r in result.runs)
        each_cpu = ", ".join(f"{r.cpu_s:.1f}" for r in result.runs)
        loads = ", ".join(f"{r.load:.1f}" for r in result.runs)
        lines.append(
            f"| {label} | {t.wall_s:.1f} | {each} | {t.cpu_s:.1f} | {each_cpu} | {loads} | "
            f"{t.process_s:.1f} | {t.rss_mb:.0f} |"
        )
    return "\n".join(lines)


def goal_table(results: dict[str, RouteResult]) -> str:
    """The three ratios for each evalsuite route, each against its goal."""
    timings = {label: result.best for label, result in results.items()}
    peft, copy = timings["peft lora"], timings["copy shards"]
    goals = [
        ("PEFT time / evalsuite time", lambda t: peft.wall_s / t.wall_s, ">=", MIN_SPEEDUP),
        ("evalsuite RSS / PEFT RSS", lambda t: t.rss_mb / peft.rss_mb, "<=", MAX_RSS_RATIO),
        ("evalsuite time / copy time", lambda t: t.wall_s / copy.wall_s, "<=", MAX_COPY_RATIO),
        ("PEFT CPU / evalsuite CPU", lambda t: peft.cpu_s / t.cpu_s, ">=", MIN_SPEEDUP),
        ("evalsuite CPU / copy CPU", lambda t: t.cpu_s / copy.cpu_s, "<=", MAX_COPY_RATIO),
    ]
    routes = [label for label in timings if label.startswith("evalsuite")]
    lines = [
        "| ratio | goal | " + " | ".join(routes) + " |",
        "|---|---|" + "---:|" * len(routes),
    ]
    for name, ratio, op, target in goals:
        cells = []
        for label in routes:
            value = ratio(timings[label])
            met = value >= target if op == ">=" else value <= target
            cells.append(f"{value:.2f} {'PASS' if met else 'MISS'}")
        lines.append(f"| {name} | {op} {target:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line() -> str:
    """Cores, memory and the versions that decide the timings."""
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{os.cpu_count()} cores, {mem_kb / 1024**2:.1f} GiB RAM, {platform.machine()}; "
        f"Python {platform.python_version()}, torch {version('torch')}, "
        f"transformers {version('transformers')}, peft {version('peft')}"
    )


def base_line(base: Path, shape: LlamaShape) -> str:
    """Size of the base as measured on disk, so the figures can be scaled to other models."""
    shards = sorted(base.glob("*.safetensors"))
    nbytes = sum(s.stat().st_size for s in shards)
    return (
        f"{shape.params / 1e9:.3f}B parameters ({shape.layers} layers, hidden {shape.hidden}, "
        f"intermediate {shape.intermediate}, vocab {shape.vocab}), bf16, "
        f"{nbytes / 1e9:.2f} GB in {len(shards)} shards"
    )


def section(body: dict[str, str], repeats: int) -> str:
    """The RESULTS.md section: what ran where, the figures, the goals, how to rerun."""
    return (
        f"{SECTION_TITLE}\n\n"
        f"- date: {body['date']}\n"
        f"- machine: {body['machine']}\n"
        f"- base: {body['base']}\n"
        f"- adapters: LoRA r={LORA_RANK} alpha={LORA_ALPHA}, RaSA r={RASA_RANK} k={RASA_K}, "
        "all 7 projections of every layer, bf16\n"
        f"- method: each run a fresh process, {repeats} alternating rounds; best wall time and "
        "least CPU time (timed after imports), largest peak RSS (VmHWM, imports included); "
        "page cache warmed by one read of the base before timing (it cannot be dropped "
        "without root), sync between runs; load = 1-minute load average before each run\n"
        f"- merge threads: {body['threads']} (one per core), torch intra-op threads held at 1 "
        "during the merge\n\n"
        f"{body['timings']}\n\n"
        f"{body['goals']}\n\n"
        f"Command: `{body['command']}`\n"
    )


def write_results(text: str) -> None:
    """Replace this script's section of RESULTS.md, keeping the others."""
    replace_section(SECTION_TITLE, text)


def bench_main(args: argparse.Namespace) -> None:
    """Build or reuse the inputs, measure every route, print and record the figures."""
    workdir = args.workdir.resolve()
    shape = LlamaShape.for_params(args.params)
    base = ensure_base(workdir, shape)
    adapters = write_adapters(workdir, base)
    print("warming the page cache with one read of the base (it cannot be dropped) ...")
    warm_page_cache(base)
    routes = [
        Route("peft lora", "peft", adapters["lora"]),
        Route("evalsuite lora", "evalsuite", adapters["lora"]),
        Route("evalsuite rasa", "evalsuite", adapters["rasa"]),
        Route("copy shards", "copy", None),
    ]
    out_root = workdir / "out"
    results = measure(routes, base, out_root, args.repeats)
    if not args.keep:
        shutil.rmtree(out_root, ignore_errors=True)
    body = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_line(),
        "base": base_line(base, shape),
        "timings": timing_table(results),
        "goals": goal_table(results),
        "command": shlex.join(["python", "bench/merge.py", *sys.argv[1:]]),
        "threads": str(len(os.sched_getaffinity(0))),
    }
    print(f"\n{body['timings']}\n\n{body['goals']}")
    write_results(section(body, args.repeats))
    print(f"\nwritten to {RESULTS_FILE}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", type=float, default=1e9, help="base size (default 1e9)")
    p.add_argument("--workdir", type=Path, default=BENCH_DIR / "_work", help="cache and outputs")
    p.add_argument("--repeats", type=int, default=2, help="runs per route (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the merged outputs")
    child = p.add_argument_group("one run of one route (used by the benchmark itself)")
    child.add_argument("--route", choices=sorted(MODES))
    child.add_argument("--base", type=Path)
    child.add_argument("--adapter", type=Path)
    child.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.route and (args.base is None or args.out is None):
        p.error("--route needs --base and --out")
    return args


if __name__ == "__main__":
    cli = parse_args()
    if cli.route:
        child_main(cli.route, cli.base, cli.adapter, cli.out)
    else:
        bench_main(cli)
