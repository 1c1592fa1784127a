"""The gate on a results directory the runner really wrote (tiny model, hf engine)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from evalsuite.cli import app
from evalsuite.evaluation.runner import EvalOptions, evaluate
from evalsuite.gate.evidence import per_document
from evalsuite.gate.results_dir import ResultsDirSource, read_jsonl
from evalsuite.testing.checkpoints import EXAMPLE_TASKS

runner = CliRunner()


@pytest.fixture(scope="module")
def real_dir(tiny_base, rasa_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("gate-real") / "results"
    evaluate(
        EvalOptions(
            base=tiny_base,
            adapter=rasa_checkpoint,
            out=out,
            tasks=["tiny_gen", "tiny_mc"],
            engine="hf",
            n_samples=3,
            max_new_tokens=4,
            task_dirs=[EXAMPLE_TASKS],
            progress=False,
        )
    )
    return out


def test_per_document_values_match_the_rows(real_dir):
    results = json.loads((real_dir / "results.json").read_text())
    mc_rows = read_jsonl(real_dir / "samples_tiny_mc.jsonl")
    # acc is the verdict, acc_norm the details' flag; one row per document
    assert per_document(mc_rows, "acc") == {r["doc_id"]: float(r["verdict"]) for r in mc_rows}
    assert per_document(mc_rows, "acc_norm") == {
        r["doc_id"]: float(r["details"]["acc_norm"]) for r in mc_rows
    }
    norm = per_document(mc_rows, "acc_norm")
    stored = results["tasks"]["tiny_mc"]["metrics"]["acc_norm"]["value"]
    assert sum(norm.values()) / len(norm) == pytest.approx(stored)

    gen_rows = read_jsonl(real_dir / "samples_tiny_gen.jsonl")
    per_doc: dict[str, list[bool]] = {}
    for r in gen_rows:
        per_doc.setdefault(r["doc_id"], []).append(r["verdict"])
    assert all(len(v) == 3 for v in per_doc.values())
    expected = {d: sum(v) / 3 for d, v in per_doc.items()}
    assert per_document(gen_rows, "pass@1") == pytest.approx(expected)
    assert per_document(gen_rows, "exact_match") == pytest.approx(expected)

    source = ResultsDirSource(real_dir, "candidate")
    assert source.tasks() == {"tiny_gen": ["exact_match"], "tiny_mc": ["acc", "acc_norm"]}
    ev = source.evidence("tiny_gen", "exact_match")
    assert ev.identity["config.sampling.n"] == 3 and ev.identity["engine"] == "hf"
    assert not ev.partial


def test_a_checkpoint_against_itself_passes(real_dir, tmp_path):
    args = ["gate", "--candidate-results", str(real_dir), "--baseline-results", str(real_dir)]
    result = runner.invoke(app, [*args, "--n-boot", "500", "--json"])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert [(c["task"], c["metric"]) for c in report["checks"]] == [
        ("tiny_gen", "exact_match"),
        ("tiny_mc", "acc"),
        ("tiny_mc", "acc_norm"),
    ]
    assert all(c["result"]["diff"] == 0.0 for c in report["checks"])

    copy = tmp_path / "copy"
    shutil.copytree(real_dir, copy)
    results = json.loads((copy / "results.json").read_text())
    results["tasks"]["tiny_gen"]["config"]["sampling"]["temperature"] = 0.2
    (copy / "results.json").write_text(json.dumps(results))
    other = runner.invoke(app, ["gate", "--candidate-results", str(copy), *args[3:]])
    assert other.exit_code == 2
    assert "config.sampling.temperature differs: candidate 0.2, baseline 0.8" in other.stdout


def _with_gen_verdicts(real_dir, out, passes) -> None:
    """A copy of ``real_dir`` whose tiny_gen rows say ``passes(doc_position)`` (hand-made: the
    tiny model never matches), with the stored exact_match made to agree with the rows."""
    shutil.copytree(real_dir, out)
    rows = read_jsonl(out / "samples_tiny_gen.jsonl")
    docs = sorted({r["doc_id"] for r in rows})
    for r in rows:
        r["verdict"] = passes(docs.index(r["doc_id"]))
    (out / "samples_tiny_gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = json.loads((out / "results.json").read_text())
    value = sum(r["verdict"] for r in rows) / len(rows)
    results["tasks"]["tiny_gen"]["metrics"]["exact_match"]["value"] = value
    (out / "results.json").write_text(json.dumps(results))


def test_per_document_values_and_the_gate_see_both_verdicts(real_dir, tmp_path):
    """Rows where some documents pass and others fail: the per-document values are 1 and 0
    where they should be, and losing every pass is a regression (exit 1)."""
    _with_gen_verdicts(real_dir, tmp_path / "baseline", lambda i: i % 3 != 2)  # 8 of 12 pass
    _with_gen_verdicts(real_dir, tmp_path / "candidate", lambda i: False)
    rows = read_jsonl(tmp_path / "baseline" / "samples_tiny_gen.jsonl")
    values = per_document(rows, "exact_match")
    docs = sorted(values)
    assert [values[d] for d in docs] == [0.0 if i % 3 == 2 else 1.0 for i in range(len(docs))]
    result = runner.invoke(
        app,
        ["gate", "--candidate-results", str(tmp_path / "candidate"), "--baseline-results",
         str(tmp_path / "baseline"), "--task", "tiny_gen", "--n-boot", "500", "--json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.stdout
    (check,) = json.loads(result.stdout)["checks"]
    assert check["result"]["diff"] == pytest.approx(-8 / 12)
