"""CPU and CUDA scores are never compared: the platform is part of an engine's identity.

vLLM's CPU and CUDA builds both report 0.32.0, and CUDA vLLM samples differently (async
scheduling and the V2 model runner are on there, forced off on the CPU). The store's hash,
the gate, compare and the resume cache keyed on the engine's name and version only. Now the
platform counts, and a result without one ran on the CPU: its hash is the one the previous
code gave (the value that code computed for a shipped result), so nothing stored changes
meaning. Which platform a score came from is only ever known on a device for CUDA;
these tests write the results a CUDA run would (the engine's record), no GPU needed.
"""

from __future__ import annotations

import copy
import types
from pathlib import Path

from service_support import real_results

from evalsuite.comparable import comparability_hash
from evalsuite.engines.cpu_dtype import engine_platform
from evalsuite.gate.compare import unlike_reasons
from evalsuite.gate.results_dir import ResultsDirSource
from evalsuite.results_schema import ResultsFile
from evalsuite.store.ingest import score_rows
from evalsuite.testing.results_dirs import default_model, math_task, write_results_dir


def _stored_hash_before_the_platform() -> str:
    """The hash the code before the platform (``ac183b3``) gave tiny_gen in the shipped
    ``tests/data/service/results.json``: what a store filled then holds for that score.
    Taken from that code itself (``git show ac183b3:evalsuite/comparable.py``), not from
    the code under test; pinned here so the test needs no git history."""
    return "6c75382becd248150bc7dac823936f0739fe183cb585ce7a289da831e459e6bc"


def _on(model: dict, platform: str | None) -> dict:
    changed = copy.deepcopy(model)
    if platform is None:
        changed["engine"].pop("platform", None)
    else:
        changed["engine"]["platform"] = platform
    return changed


def test_a_cpu_score_keeps_its_stored_hash_and_cuda_gets_another() -> None:
    results = real_results()
    config, model = results["tasks"]["tiny_gen"]["config"], results["model"]
    before = _stored_hash_before_the_platform()
    assert comparability_hash(config, _on(model, None)) == before  # stored before: unchanged
    assert comparability_hash(config, _on(model, "cpu")) == before  # no platform means cpu
    cuda = comparability_hash(config, _on(model, "cuda"))
    rocm = comparability_hash(config, _on(model, "rocm"))
    assert len({before, cuda, rocm}) == 3


def test_the_gate_refuses_across_platforms_and_names_both(tmp_path: Path) -> None:
    task = math_task([True, False, True])
    cpu_model = default_model()  # as results written before the platform was recorded
    cuda_model = _on(default_model(), "cuda")
    cpu = ResultsDirSource(write_results_dir(tmp_path / "cpu", [task], model=cpu_model), "baseline")
    gpu = ResultsDirSource(
        write_results_dir(tmp_path / "gpu", [task], model=cuda_model), "candidate"
    )
    reasons = unlike_reasons(gpu.evidence("math", "acc"), cpu.evidence("math", "acc"))
    assert reasons == ["platform differs: candidate 'cuda', baseline 'cpu'"]
    same = ResultsDirSource(
        write_results_dir(tmp_path / "cpu2", [task], model=_on(cpu_model, "cpu")), "candidate"
    )
    assert unlike_reasons(same.evidence("math", "acc"), cpu.evidence("math", "acc")) == []


def test_the_store_records_the_platform_and_hashes_it(tmp_path: Path) -> None:
    results = real_results()
    job = types.SimpleNamespace(id=1, checkpoint_id=1)
    rows = {}
    for platform in (None, "cuda"):
        results["model"] = _on(results["model"], platform)
        rows[platform] = score_rows(job, ResultsFile.model_validate(results))
    assert {r["platform"] for r in rows[None]} == {"cpu"}
    assert {r["platform"] for r in rows["cuda"]} == {"cuda"}
    for old, new in zip(rows[None], rows["cuda"], strict=True):
        assert old["config_hash"] != new["config_hash"]


def test_the_cpu_builds_here_are_the_cpu_platform() -> None:
    """This machine has vLLM's CPU build and no GPU: both engines' scores are cpu scores, so
    their resume-cache keys stay as they were."""
    assert engine_platform("vllm") == "cpu" and engine_platform("hf") == "cpu"
