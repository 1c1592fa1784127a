"""One engine across checkpoints: swapped weights answer exactly as a fresh engine.

* three checkpoints of a run in a row through one engine (weights swapped in, prefix cache
  dropped) against three fresh engines: seeded samples, greedy completions and
  loglikelihoods identical, for vLLM and transformers merged, and vLLM LoRA-served; the
  checkpoints' answers differ from each other, so stale weights or a stale cache would show;
* a swap onto another architecture (hidden size, layer count) is refused before any weight
  is written (the running engine still answers as before), and the slot falls back to a
  fresh engine with a note;
* memory stays flat over 20 swapped checkpoints (the figure is printed);
* a tensor-parallel size the machine cannot give is refused before any engine starts.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import torch
from conftest import requires_vllm
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.engines import EngineError, EngineSpec, GenerationRequest
from evalsuite.engines.base import SwapRefused
from evalsuite.engines.slot import EngineSlot
from evalsuite.engines.spec import check_parallelism
from evalsuite.errors import EvalsuiteError
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.evaluation.series import checkpoint_series, evaluate_series
from evalsuite.testing.checkpoints import EXAMPLE_TASKS, trainer_dir, write_lora
from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tiny_base, tmp_path_factory) -> list[Path]:
    """Three epochs of a LoRA run, far enough apart that their answers differ."""
    root = tmp_path_factory.mktemp("reuse-run")
    return [
        write_lora(trainer_dir(root, 10 * e, float(e)), tiny_base, TARGET_MODULES, seed=e, std=0.3)
        for e in (1, 2, 3)
    ]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """The example tasks (seeded samples, loglikelihoods) and a greedy copy of tiny_gen."""
    tasks = tmp_path_factory.mktemp("reuse-tasks")
    for path in EXAMPLE_TASKS.iterdir():
        shutil.copy(path, tasks / path.name)
    greedy = (EXAMPLE_TASKS / "tiny_gen.yaml").read_text()
    greedy = greedy.replace("name: tiny_gen", "name: tiny_greedy")
    greedy = greedy.replace("{n: 4, temperature: 0.8, top_p: 0.95, seed: 0,", "{n: 1,")
    assert "tiny_greedy" in greedy and "temperature" not in greedy.split("sampling:")[1]
    (tasks / "tiny_greedy.yaml").write_text(greedy)
    (tasks / "suites.yaml").write_text("reuse: [tiny_gen, tiny_greedy, tiny_mc]\n")
    return tasks


def _answers(out: Path) -> dict[str, list[dict]]:
    """Every sample row of every task, as written (texts, verdicts, loglikelihoods)."""
    return {
        path.name: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(out.glob("samples_*.jsonl"))
    }


def _lifecycles(results: list[tuple[dict, Path]]) -> list[dict]:
    return [r["model"]["engine"]["lifecycle"] for r, _ in results]


@pytest.mark.parametrize(
    ("engine", "materialize"),
    [("vllm", "merged"), ("hf", "merged"), ("vllm", "lora")],
)
def test_swapped_checkpoints_answer_exactly_as_fresh_engines(
    engine, materialize, run, tiny_base, task_dir, tmp_path
):
    if engine == "vllm":
        requires_vllm()
    opts = EvalOptions(
        base=tiny_base, out=tmp_path, suite="reuse", engine=engine, materialize=materialize,
        task_dirs=[task_dir], progress=False,
    )  # fmt: skip
    reused = evaluate_series(opts, checkpoint_series(run, None, tmp_path / "reused"))
    fresh = evaluate_series(
        opts, checkpoint_series(run, None, tmp_path / "fresh"), reuse_engine=False
    )
    answers = [_answers(out) for _, out in reused]
    assert [_answers(out) for _, out in fresh] == answers
    assert [_metrics(r) for r, _ in fresh] == [_metrics(r) for r, _ in reused]
    for earlier, later in itertools.pairwise(answers):
        for task in ("samples_tiny_gen.jsonl", "samples_tiny_greedy.jsonl"):
            texts = [row["completion"] for row in earlier[task]]
            assert texts != [row["completion"] for row in later[task]]
        assert earlier["samples_tiny_mc.jsonl"] != later["samples_tiny_mc.jsonl"]

    kept = _lifecycles(reused)
    assert [c["how"] for c in kept] == ["started", "swapped", "swapped"]
    assert len({c["engine_id"] for c in kept}) == 1
    assert [c["checkpoint_index"] for c in kept] == [1, 2, 3]
    assert all("engine_swap_s" in r["timings"] for r, _ in reused[1:])
    restarted = _lifecycles(fresh)
    assert [c["how"] for c in restarted] == ["started"] * 3
    assert len({c["engine_id"] for c in restarted}) == 3


def _metrics(results: dict) -> dict:
    return {
        (task, name): m["value"]
        for task, entry in results["tasks"].items()
        for name, m in entry["metrics"].items()
    }


def test_a_swap_onto_another_architecture_is_refused_before_any_weight_is_written(
    tiny_base, tmp_path
):
    from evalsuite.engines.hf import HfEngine

    wider = build_tiny_llama(tmp_path / "wider", hidden=96, intermediate=192)
    shorter = build_tiny_llama(tmp_path / "shorter", num_layers=2)
    sibling = build_tiny_llama(tmp_path / "sibling", seed=7)  # same shapes, other numbers
    engine = HfEngine(str(tiny_base))
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    for other, field in ((wider, "hidden_size"), (shorter, "num_hidden_layers")):
        with pytest.raises(SwapRefused, match=field):
            engine.swap_weights(str(other))
        after = engine.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), "a refused swap wrote"

    engine.swap_weights(str(sibling))
    reference = HfEngine(str(sibling))
    swapped, loaded = engine.model.state_dict(), reference.model.state_dict()
    assert any(not torch.equal(before[k], swapped[k]) for k in before)
    assert all(torch.equal(swapped[k], loaded[k]) for k in loaded)


def test_the_slot_falls_back_to_a_fresh_engine_with_a_note(tiny_base, tmp_path):
    requires_vllm()
    wider = build_tiny_llama(tmp_path / "wider", hidden=96, intermediate=192)
    notes: list[str] = []
    slot = EngineSlot(log=notes.append)
    spec = EngineSpec("vllm", str(tiny_base), max_model_len=256)
    request = [GenerationRequest("def add(a, b):", max_tokens=12)]
    try:
        engine, first = slot.get(spec)
        answer = engine.generate(request)
        with pytest.raises(SwapRefused, match="hidden_size"):
            engine.swap_weights(str(wider))
        assert engine.generate(request) == answer  # still the base's weights, and usable
        engine, second = slot.get(replace(spec, model_dir=str(wider)))
        assert second.how == "started" and second.engine_id != first.engine_id
        assert "hidden_size" in (second.note or "") and any("hidden_size" in n for n in notes)
        assert engine.spec.model_dir == str(wider) and engine.generate(request)
    finally:
        slot.close()


def test_memory_stays_flat_over_20_swapped_checkpoints(run, tiny_base, task_dir, tmp_path):
    """RSS of the engine process and of the process running the evaluations, after each of
    20 checkpoints (the run's three, in turn, each one a swap): the growth from the fifth to
    the twentieth stays under 64 MiB in both."""
    requires_vllm()
    slot = EngineSlot()
    engine_rss, runner_rss = [], []
    try:
        for i in range(20):
            opts = EvalOptions(
                base=tiny_base, adapter=run[i % 3], out=tmp_path / f"job-{i}",
                tasks=["tiny_greedy", "tiny_mc"], engine="vllm", task_dirs=[task_dir],
                progress=False,
            )  # fmt: skip
            results = evaluate(opts, slot)
            assert results["model"]["engine"]["lifecycle"]["checkpoint_index"] == i + 1
            engine_rss.append(psutil.Process(slot.engine.pid).memory_info().rss)
            runner_rss.append(psutil.Process().memory_info().rss)
    finally:
        slot.close()
    mib = 1 << 20
    growth = {
        "engine": (engine_rss[-1] - engine_rss[4]) / mib,
        "runner": (runner_rss[-1] - runner_rss[4]) / mib,
    }
    print(
        f"RSS after job 5 -> 20: engine {engine_rss[4] / mib:.0f} -> {engine_rss[-1] / mib:.0f} "
        f"MiB, runner {runner_rss[4] / mib:.0f} -> {runner_rss[-1] / mib:.0f} MiB"
    )
    assert growth["engine"] < 64 and growth["runner"] < 64, growth


def _eval(*args: str):
    return CliRunner().invoke(app, ["eval", "--quiet", *args])


def _refusal(result) -> str:
    """The one-line error ``evalsuite`` prints (exit code 2) for a refused command line."""
    assert isinstance(result.exception, EvalsuiteError), (result.output, result.exception)
    return str(result.exception)


def test_eval_over_a_run_writes_one_results_directory_per_checkpoint(run, tiny_base, tmp_path):
    out = tmp_path / "out"
    common = ["--base", str(tiny_base), "--tasks", "tiny_mc", "--engine", "hf"]
    common += ["--task-dir", str(EXAMPLE_TASKS)]
    result = _eval(*common, "--run-dir", str(run[0].parent), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(c.name for c in run)
    written = [json.loads((out / c.name / "results.json").read_text()) for c in run]
    assert [r["checkpoint"]["path"] for r in written] == [str(c) for c in run]
    assert [r["model"]["engine"]["lifecycle"]["how"] for r in written] == [
        "started",
        "swapped",
        "swapped",
    ]

    both = _eval(*common, "--run-dir", str(run[0].parent), "--adapter", str(run[0]), "--out", "x")
    assert "not both" in _refusal(both)
    (tmp_path / "empty").mkdir()
    empty = _eval(*common, "--run-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "e"))
    assert "no checkpoint-<step>" in _refusal(empty)
    twin = tmp_path / "twin" / run[0].name
    shutil.copytree(run[0], twin)
    clash = _eval(*common, "--adapter", str(run[0]), "--adapter", str(twin), "--out", "y")
    assert "collide" in _refusal(clash)


def test_a_tensor_parallel_size_this_machine_cannot_give_is_refused_first(tiny_base, tmp_path):
    with pytest.raises(EngineError, match=r"asks for 2 GPUs, but 0 are visible"):
        check_parallelism("vllm", 2)
    with pytest.raises(EngineError, match=r"needs the vllm engine; the hf engine runs on 1"):
        check_parallelism("hf", 4)
    with pytest.raises(EngineError, match="at least 1"):
        check_parallelism("vllm", 0)
    check_parallelism("vllm", 1)

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "eval", "--base", str(tiny_base), "--out", str(out), "--tasks", "tiny_mc",
            "--task-dir", str(EXAMPLE_TASKS), "--engine", "hf", "--tensor-parallel-size", "2",
        ],
    )  # fmt: skip
    message = _refusal(result)
    assert "--tensor-parallel-size 2" in message and "1 device" in message
    assert not (out / "results.json").exists()


def test_tensor_parallel_size_is_recorded_with_the_engine_settings(tiny_base, tmp_path):
    requires_vllm()
    results = evaluate(
        EvalOptions(
            base=tiny_base, out=tmp_path, tasks=["tiny_mc"], engine="vllm",
            task_dirs=[EXAMPLE_TASKS], progress=False, tensor_parallel_size=1,
        )
    )  # fmt: skip
    assert results["model"]["engine"]["settings"]["tensor_parallel_size"] == 1
