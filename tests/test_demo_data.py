"""``evalsuite demo --data-dir DIR`` reads the same layout as ``evalsuite eval --data-dir``
(docs/data.md), including the forms the loaders accept besides the usual one: the original
HellaSwag jsonl and WinoGrande without its labels file. No model, no service: only the
subset writer and the loaders that read its output.
"""

from __future__ import annotations

import json

import pytest

from evalsuite.demo.data import write_demo_data, write_subset
from evalsuite.tasks.lm_eval_data import LOADERS


def _counts(root):
    return {
        name: {s: len(rows) for s, rows in load(root).items()} for name, load in LOADERS.items()
    }


def test_subset_takes_the_first_documents_of_each_file(tmp_path):
    source = write_demo_data(tmp_path / "source")
    subset = write_subset(source, tmp_path / "subset", 2)
    assert _counts(subset) == {
        "arc_challenge": {"test": 2, "validation": 2},
        "winogrande": {"validation": 2},
        "hellaswag": {"validation": 2},
    }
    labels = (source / "winogrande" / "dev-labels.lst").read_text().split()
    assert (subset / "winogrande" / "dev-labels.lst").read_text().split() == labels[:2]


def test_subset_reads_the_original_hellaswag_jsonl_and_no_labels_file(tmp_path):
    source = write_demo_data(tmp_path / "source")
    (source / "hellaswag" / "hellaswag_val_full.txt.bz2").unlink()
    (source / "winogrande" / "dev-labels.lst").unlink()
    rows = [
        {"activity_label": "Cooking", "ctx_a": f"A cook cracks egg {i}.", "ctx_b": "she",
         "endings": ["stirs it.", "sings.", "leaves.", "sleeps."], "label": i % 4}
        for i in range(4)
    ]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (source / "hellaswag" / "hellaswag_val.jsonl").write_text(text)
    subset = write_subset(source, tmp_path / "subset", 3)
    assert not (subset / "hellaswag" / "hellaswag_val_full.txt.bz2").exists()
    assert not (subset / "winogrande" / "dev-labels.lst").exists()
    docs = LOADERS["hellaswag"](subset)["validation"]
    assert [d["ctx_a"] for d in docs] == [f"A cook cracks egg {i}." for i in range(3)]
    wino = [json.loads(line) for line in (source / "winogrande" / "dev.jsonl").open()]
    assert LOADERS["winogrande"](subset)["validation"][2]["answer"] == wino[2]["answer"]


def test_missing_file_points_at_the_layout_document(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"docs/data\.md"):
        write_subset(tmp_path / "empty", tmp_path / "subset", 2)
