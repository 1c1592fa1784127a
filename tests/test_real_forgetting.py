"""Forgetting parity on the real model: ``evalsuite eval`` (hf engine, fp32) on the first
documents of ARC-Challenge, WinoGrande and HellaSwag equals lm-eval run directly with its own
``hf`` backend and its stock task definitions; the vllm engine differs by less than a bound,
and only documents whose two best choices lie within that bound may flip.

The reference route shares nothing with evalsuite's task layer: this file converts the local
files to the Hugging Face schemas itself and feeds lm-eval's stock YAML (``dataset_path:
json`` with ``data_files``). HellaSwag's local copy is the text form (``activity_label: ctx``
on one line, the split of ``ctx`` into ``ctx_a`` / ``ctx_b`` lost): the label is the part
before the first ``": "``, ``ctx_a`` the rest and ``ctx_b`` empty, which lm-eval's
``process_docs`` joins back into the same query. CI runs DOCS documents per task (the real
model costs about 0.2-0.4 s per loglikelihood request on 2 cores); bench/real_model.py runs
the same comparison on more documents and the full sets (bench/RESULTS.md).
"""

from __future__ import annotations

import bz2
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, requires_vllm

DOCS = 12  # per task
TASKS = {"arc_challenge": "arc/arc_challenge.yaml", "winogrande": "winogrande/default.yaml",
         "hellaswag": "hellaswag/hellaswag.yaml"}  # fmt: skip
METRICS = {"arc_challenge": ("acc", "acc_norm"), "winogrande": ("acc",),
           "hellaswag": ("acc", "acc_norm")}  # fmt: skip
LL_TOL = 1e-4  # hf engine vs lm-eval's hf backend, both fp32
VLLM_LL_BOUND = 1e-3  # vllm engine (fp32) vs lm-eval's hf backend
EXE = str(Path(sys.executable).with_name("evalsuite"))

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the benchmark data folder {SHARED_DATA} is not here"
)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hf_schema_files(data: Path, out: Path, n: int | None) -> dict[str, tuple[str, Path]]:
    """task -> (split, JSONL in the Hugging Face dataset's schema), first ``n`` documents."""
    out.mkdir(parents=True, exist_ok=True)
    arc = [
        {"id": r["id"], "question": r["question"]["stem"], "answerKey": r["answerKey"],
         "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                     "label": [c["label"] for c in r["question"]["choices"]]}}
        for r in _jsonl(data / "arc_challenge" / "ARC-Challenge-Test.jsonl")
    ]  # fmt: skip
    wino = [
        {k: r[k] for k in ("sentence", "option1", "option2", "answer")}
        for r in _jsonl(data / "winogrande" / "dev.jsonl")
    ]
    lines = bz2.decompress((data / "hellaswag" / "hellaswag_val_full.txt.bz2").read_bytes())
    lines = lines.decode().split("\n")
    hella = []
    for i in range(len(lines) // 6):
        context, label, *endings = lines[6 * i : 6 * i + 6]
        activity, _, ctx = context.partition(": ")
        hella.append({"ind": i, "activity_label": activity, "ctx_a": ctx, "ctx_b": "",
                      "ctx": ctx, "endings": endings, "source_id": "", "split": "val",
                      "split_type": "", "label": label})  # fmt: skip
    files = {}
    for task, split, rows in (("arc_challenge", "test", arc), ("winogrande", "validation", wino),
                              ("hellaswag", "validation", hella)):  # fmt: skip
        path = out / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
        files[task] = (split, path)
    return files


def lm_eval_stock_tasks(files: dict[str, tuple[str, Path]]) -> list:
    """lm-eval's own task YAML (its loader, includes and !functions resolved), reading the
    converted files instead of the hub."""
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    stock = Path(lm_eval.tasks.__file__).parent
    tasks = []
    for task, yaml_path in TASKS.items():
        split, path = files[task]
        config = load_yaml(stock / yaml_path, resolve_func=True, recursive=True)
        config.pop("tag", None)
        # zero-shot: only the evaluated split exists locally
        for key in ("training_split", "validation_split", "test_split"):
            config[key] = split if key == f"{split}_split" else None
        config.update(dataset_path="json", dataset_name=None,
                      dataset_kwargs={"data_files": {split: str(path)}})  # fmt: skip
        tasks.append(ConfigurableTask(config=config))
    return tasks


def evalsuite_forgetting(base: Path, out: Path, engine: str, limit: int) -> Path:
    done = subprocess.run(
        [EXE, "eval", "--base", str(base), "--suite", "forgetting", "--data-dir",
         str(SHARED_DATA), "--limit", str(limit), "--engine", engine, "--dtype", "float32",
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def samples(out: Path, task: str) -> list[dict]:
    return _jsonl(out / f"samples_{task}.jsonl")


@pytest.fixture(scope="module")
def direct(smollm2, tmp_path_factory):
    """lm-eval run directly: its hf backend, fp32, batched, on the converted documents."""
    from lm_eval import simple_evaluate

    files = hf_schema_files(SHARED_DATA, tmp_path_factory.mktemp("hf-schema"), DOCS)
    return simple_evaluate(
        model="hf",
        model_args=f"pretrained={smollm2},dtype=float32,device=cpu",
        tasks=lm_eval_stock_tasks(files),
        log_samples=True,
        batch_size=16,
        verbosity="WARNING",
    )


def _theirs(direct: dict, task: str) -> list[dict]:
    return sorted(direct["samples"][task], key=lambda s: int(s["doc_id"]))


def test_hf_engine_equals_lm_eval_run_directly(smollm2, direct, tmp_path):
    out = evalsuite_forgetting(smollm2, tmp_path / "hf", "hf", DOCS)
    results = json.loads((out / "results.json").read_text())
    verdicts = set()
    for task, metrics in METRICS.items():
        ours, theirs = samples(out, task), _theirs(direct, task)
        assert len(ours) == len(theirs) == DOCS
        for a, b in zip(ours, theirs, strict=True):
            lls = [r[0] for r in b["filtered_resps"]]
            assert a["details"]["loglikelihoods"] == pytest.approx(lls, abs=LL_TOL), (task, a)
            for metric in metrics:
                assert a["details"][metric] == b[metric], (task, a["doc_id"], metric)
                verdicts.add(bool(b[metric]))
            assert results["tasks"][task]["metrics"][metric]["value"] == pytest.approx(
                direct["results"][task][f"{metric},none"]
            )
    assert verdicts == {True, False}  # right and wrong answers both occur


def test_vllm_engine_is_within_a_bound_and_flips_only_near_ties(smollm2, direct, tmp_path):
    requires_vllm()
    out = evalsuite_forgetting(smollm2, tmp_path / "vllm", "vllm", DOCS)
    worst, flips = 0.0, []
    for task, metrics in METRICS.items():
        for a, b in zip(samples(out, task), _theirs(direct, task), strict=True):
            ours, lls = a["details"]["loglikelihoods"], [r[0] for r in b["filtered_resps"]]
            worst = max(worst, *(abs(x - y) for x, y in zip(ours, lls, strict=True)))
            for metric in metrics:
                if a["details"][metric] != b[metric]:
                    top = sorted(lls, reverse=True)
                    flips.append((task, a["doc_id"], metric, top[0] - top[1]))
    print(f"vllm vs lm-eval hf: max |loglikelihood diff| {worst:.2e}; flips: {flips}")
    assert worst <= VLLM_LL_BOUND
    # acc_norm divides by the choice's length, so its margin scales too; 2 bounds is generous
    assert all(margin <= 2 * VLLM_LL_BOUND for *_, margin in flips), flips
