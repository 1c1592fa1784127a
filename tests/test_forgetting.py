"""Forgetting checks: lm-eval's own tasks on local data, equal to lm-eval run directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, requires_vllm

from evalsuite.tasks.errors import TaskError
from evalsuite.tasks.lm_eval_data import LOADERS
from evalsuite.tasks.lm_eval_tasks import lm_eval_config
from evalsuite.tasks.registry import TaskRegistry

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"the benchmark data folder {SHARED_DATA} is not here"
)
TASKS = ("hellaswag", "winogrande", "arc_challenge")
HEADLINE = {"hellaswag": "acc_norm", "winogrande": "acc", "arc_challenge": "acc_norm"}
LIMIT = 25
EXE = str(Path(sys.executable).with_name("evalsuite"))


def test_local_documents_have_the_public_schemas_and_counts():
    arc = LOADERS["arc_challenge"](SHARED_DATA)
    assert len(arc["test"]) == 1172 and len(arc["validation"]) == 299
    numeric = [d for d in arc["test"] if d["answerKey"] in "1234"]
    assert len(numeric) > 0
    for doc in arc["test"]:
        assert doc["answerKey"] in doc["choices"]["label"]
        assert len(doc["choices"]["text"]) == len(doc["choices"]["label"])
    wino = LOADERS["winogrande"](SHARED_DATA)["validation"]
    assert len(wino) == 1267 and {d["answer"] for d in wino} == {"1", "2"}
    hella = LOADERS["hellaswag"](SHARED_DATA)["validation"]
    assert len(hella) == 10042 and all(len(d["endings"]) == 4 for d in hella)
    assert [sum(d["label"] == str(k) for d in hella) for k in range(4)] == [2515, 2485, 2584, 2458]


def test_lm_evals_own_prompts_are_used():
    from lm_eval.api.task import ConfigurableTask

    spec = TaskRegistry().tasks["arc_challenge"]
    task = ConfigurableTask(config=lm_eval_config(spec, SHARED_DATA)[0])
    doc = task.eval_docs[0]
    assert task.doc_to_text(doc) == f"Question: {doc['question']}\nAnswer:"
    assert task.doc_to_choice(doc) == doc["choices"]["text"]
    numeric = next(d for d in task.eval_docs if d["answerKey"] == "1")
    assert task.doc_to_target(numeric) == numeric["choices"]["label"].index("1")


@pytest.fixture(scope="module")
def reference(tiny_base, rasa_checkpoint, tmp_path_factory):
    """Our run (hf engine, merged), then lm-eval's own hf model on the same merged weights."""
    from lm_eval import simple_evaluate
    from lm_eval.api.task import ConfigurableTask

    out = tmp_path_factory.mktemp("forgetting") / "hf"
    _run(tiny_base, rasa_checkpoint, out, "hf")
    merged = json.loads((out / "results.json").read_text())["model"]["model_dir"]
    registry = TaskRegistry()
    tasks = [
        ConfigurableTask(config=lm_eval_config(registry.tasks[t], SHARED_DATA)[0]) for t in TASKS
    ]
    direct = simple_evaluate(
        model="hf",
        model_args=f"pretrained={merged},dtype=float32,device=cpu",
        tasks=tasks,
        limit=LIMIT,
        log_samples=True,
        batch_size=8,
        verbosity="WARNING",
    )
    return out, direct


def _run(base, adapter, out, engine):
    done = subprocess.run(
        [
            EXE,
            "eval",
            "--base",
            str(base),
            "--adapter",
            str(adapter),
            "--suite",
            "forgetting",
            "--data-dir",
            str(SHARED_DATA),
            "--limit",
            str(LIMIT),
            "--engine",
            engine,
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=out.parent,  # outside any git checkout, as a user's run directory often is
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not a git repository" not in done.stderr  # lm-eval's git call stays quiet


def _compare(out: Path, direct: dict) -> None:
    results = json.loads((out / "results.json").read_text())
    for task in TASKS:
        ours = [
            json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()
        ]
        theirs = sorted(direct["samples"][task], key=lambda s: int(s["doc_id"]))
        assert len(ours) == len(theirs) == LIMIT
        for a, b in zip(ours, theirs, strict=True):
            lls = [r[0] for r in b["filtered_resps"]]
            assert a["details"]["loglikelihoods"] == pytest.approx(lls, abs=1e-4)
            for metric in ("acc", "acc_norm"):
                if metric in b:
                    assert a["details"][metric] == b[metric], (task, a["doc_id"], metric)
        for metric, m in results["tasks"][task]["metrics"].items():
            assert m["value"] == direct["results"][task][f"{metric},none"]
            assert m["n"] == LIMIT
    score = results["aggregates"]["forgetting_score"]
    assert score["value"] == pytest.approx(
        sum(results["tasks"][t]["metrics"][HEADLINE[t]]["value"] for t in TASKS) / 3
    )
    assert score["partial"] is True and results["partial"] is True


def test_forgetting_suite_equals_lm_eval_run_directly(reference):
    out, direct = reference
    _compare(out, direct)
    config = json.loads((out / "results.json").read_text())["tasks"]["arc_challenge"]["config"]
    assert config["lm_eval"] == {
        "task": "arc_challenge",
        "yaml": "arc/arc_challenge.yaml",
        "metric": "acc_norm",
        "num_fewshot": 0,
    }


def test_the_vllm_engine_gives_the_same_numbers(reference, tiny_base, rasa_checkpoint, tmp_path):
    requires_vllm()
    _, direct = reference
    _run(tiny_base, rasa_checkpoint, tmp_path / "vllm", "vllm")
    _compare(tmp_path / "vllm", direct)


def test_missing_and_malformed_local_files_are_named(tmp_path):
    with pytest.raises(TaskError, match=r"winogrande/dev.jsonl does not exist"):
        LOADERS["winogrande"](tmp_path)
    (tmp_path / "arc_challenge").mkdir()
    good = (SHARED_DATA / "arc_challenge" / "ARC-Challenge-Test.jsonl").read_text().splitlines()
    (tmp_path / "arc_challenge" / "ARC-Challenge-Test.jsonl").write_text(
        "\n".join([*good[:3], "{not json", *good[3:5]])
    )
    with pytest.raises(TaskError, match=r"ARC-Challenge-Test.jsonl, line 4: not valid JSON"):
        LOADERS["arc_challenge"](tmp_path)
