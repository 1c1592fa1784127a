"""``evalsuite export-lora``, ``tasks`` and ``make-example`` through the real command line
(a subprocess of the installed ``evalsuite``), checked against what each one promises:

* export-lora: a directory PEFT loads whose merge (PEFT's own) equals ``evalsuite merge``'s
  output within 1e-5, padded or not; kinds without an exact LoRA are refused in one line;
* tasks: every shipped task YAML (evalsuite/tasks/definitions/) and every suite of its
  suites.yaml, read here with yaml;
* make-example: what its --help says (a tiny base, LoRA / rsLoRA / RaSA / MoRA runs of three
  epochs, two tasks in suite 'tiny'), usable as it is by ``adapter info`` and ``eval``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import load_model

from evalsuite.testing.checkpoints import EXAMPLE_TASKS

TASKS = Path(__file__).resolve().parents[1] / "evalsuite" / "tasks" / "definitions"
TOL = 1e-5


def evalsuite(*args: str, cwd: Path | None = None, timeout: float = 600):
    """``evalsuite ARGS`` as a user runs it; the table output wide enough not to wrap."""
    exe = Path(sys.executable).with_name("evalsuite")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "evalsuite.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "1000"},
    )


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def _one_line(text: str) -> str:
    return " ".join(text.split())


# export-lora


def _tensors(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for shard in sorted(directory.glob("*.safetensors")):
        out.update(load_file(shard))
    assert out, f"no safetensors in {directory}"
    return out


def _peft_merged(base: Path, lora_dir: Path) -> dict[str, torch.Tensor]:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_model(base), lora_dir).merge_and_unload()
    return {name: t.detach().float() for name, t in model.state_dict().items()}


def _source(kind: str, request) -> Path:
    if kind in ("rasa", "lora", "mora"):
        return request.getfixturevalue(f"{kind}_checkpoint")
    return request.getfixturevalue("peft_checkpoint")(kind)


@pytest.fixture(scope="module")
def merged(tiny_base, tmp_path_factory, request):
    """kind -> ``evalsuite merge`` of that checkpoint into the tiny base (made once)."""
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            out = tmp_path_factory.mktemp(f"merged-{kind}") / "model"
            _ok(evalsuite("merge", "--base", str(tiny_base), "--adapter",
                          str(_source(kind, request)), "--out", str(out), "--quiet"))  # fmt: skip
            made[kind] = out
        return made[kind]

    return make


# kind -> exact rank of the export: RaSA r=8, k=2 on 3 layers is 8 - 2 + 3*2
EXPORTS = {"rasa": 12, "lora": 8, "rslora": 8}


@pytest.mark.parametrize("kind", EXPORTS)
def test_export_lora_merges_to_what_evalsuite_merge_writes(
    kind, tiny_base, merged, request, tmp_path
):
    source = _source(kind, request)
    out = tmp_path / "lora"
    result = _ok(evalsuite("export-lora", "--adapter", str(source), "--out", str(out)))
    rank = EXPORTS[kind]
    assert f"as a rank-{rank} LoRA (exact rank {rank}) into {out}" in _one_line(result.stderr)
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", rank, rank)
    assert config["use_rslora"] is False and config["use_dora"] is False
    info = json.loads((out / "export_info.json").read_text())
    assert (info["exact_rank"], info["rank"], info["dtype"]) == (rank, rank, "float32")
    assert info["source_kind"] == kind and Path(info["source_path"]) == source

    expected = _tensors(merged(kind))
    got = _peft_merged(tiny_base, out)
    base = _tensors(tiny_base)
    changed = 0
    for name, want in expected.items():
        assert name in got, f"{name} missing from PEFT's merged model"
        diff = (got[name] - want.float()).abs().max().item()
        assert diff <= TOL, f"{name}: PEFT's merge of the export is {diff:.3g} away"
        changed += (want.float() - base[name].float()).abs().max().item() > 1e-3
    # every targeted Linear of every layer moved: the comparison is not of two bases
    layers = json.loads((tiny_base / "config.json").read_text())["num_hidden_layers"]
    assert changed == len(config["target_modules"]) * layers, changed


def test_export_lora_padded_to_a_vllm_rank_merges_the_same(tiny_base, merged, request, tmp_path):
    out = tmp_path / "padded"
    source = _source("rasa", request)
    result = _ok(evalsuite("export-lora", "--adapter", str(source), "--out", str(out),
                           "--pad-to", "auto"))  # fmt: skip
    assert "as a rank-16 LoRA (exact rank 12)" in _one_line(result.stderr)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
    tensors = _tensors(out)
    a = next(t for name, t in tensors.items() if name.endswith("lora_A.weight"))
    assert a.shape[0] == 16 and torch.count_nonzero(a[12:]) == 0  # zero ranks, appended
    expected = _tensors(merged("rasa"))
    got = _peft_merged(tiny_base, out)
    worst = max((got[n] - t.float()).abs().max().item() for n, t in expected.items())
    assert worst <= TOL


def test_export_lora_refuses_a_kind_without_an_exact_lora(mora_checkpoint, tmp_path):
    out = tmp_path / "lora"
    result = evalsuite("export-lora", "--adapter", str(mora_checkpoint), "--out", str(out))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = _one_line(result.stderr)
    assert message.startswith("error:") and "mora adapter has no exact plain-LoRA form" in message
    assert "evalsuite merge" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no half-written output


def test_export_lora_keeps_an_existing_output(rasa_checkpoint, tmp_path):
    out = tmp_path / "lora"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    refused = evalsuite("export-lora", "--adapter", str(rasa_checkpoint), "--out", str(out))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--overwrite" in _one_line(refused.stderr)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    _ok(evalsuite("export-lora", "--adapter", str(rasa_checkpoint), "--out", str(out),
                  "--overwrite"))  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "export_info.json",
    ]


# tasks


def _listed(stdout: str) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """The table's rows (name -> {column: cell}) and the suites, as printed."""
    columns: list[str] = []
    rows, suites = {}, {}
    for line in stdout.splitlines():
        if line.startswith("suite "):
            name, _, members = line.removeprefix("suite ").partition(": ")
            suites[name] = [m.strip() for m in members.split(",")]
        elif line.startswith("┃"):
            columns = [c.strip() for c in line.strip("┃").split("┃")]
        elif line.startswith("│"):
            cells = dict(zip(columns, (c.strip() for c in line.strip("│").split("│")), strict=True))
            rows[cells["name"]] = cells
    return rows, suites


def _yaml_tasks(*dirs: Path) -> dict[str, dict]:
    specs = {}
    for d in dirs:
        for path in sorted(d.glob("*.yaml")):
            if path.name != "suites.yaml":
                spec = yaml.safe_load(path.read_text())
                specs[spec["name"]] = spec
    return specs


def _yaml_suites(*dirs: Path) -> dict[str, list[str]]:
    suites = {}
    for d in dirs:
        path = d / "suites.yaml"
        if path.exists():
            for name, entry in yaml.safe_load(path.read_text()).items():
                suites[name] = entry["tasks"] if isinstance(entry, dict) else entry
    return suites


def _samples(spec: dict) -> str:
    if spec["kind"] != "generate":
        return "-"
    s = spec["sampling"]
    return f"n={s['n']} T={s['temperature']:g}"


def _check_listing(stdout: str, *dirs: Path) -> None:
    rows, suites = _listed(stdout)
    specs = _yaml_tasks(*dirs)
    assert sorted(rows) == sorted(specs)
    for name, spec in specs.items():
        row = rows[name]
        assert row["kind"] == spec["kind"], name
        assert row["samples"] == _samples(spec), name
        assert row["scorer"] == (spec.get("scorer") or "acc/acc_norm"), name
        assert row["description"] == spec["description"], name
    assert suites == _yaml_suites(*dirs)


def test_tasks_lists_every_task_yaml_and_suite():
    yaml_files = [p for p in TASKS.glob("*.yaml") if p.name != "suites.yaml"]
    assert len(yaml_files) >= 6  # the test reads the real folder, not an empty one
    result = _ok(evalsuite("tasks"))
    _check_listing(result.stdout, TASKS)
    rows, suites = _listed(result.stdout)
    assert {"humaneval_plus", "math", "hellaswag", "winogrande", "arc_challenge"} <= set(rows)
    assert suites["forgetting"] == ["hellaswag", "winogrande", "arc_challenge"]


def test_tasks_with_a_task_dir_adds_its_tasks_and_suites():
    result = _ok(evalsuite("tasks", "--task-dir", str(EXAMPLE_TASKS)))
    _check_listing(result.stdout, TASKS, EXAMPLE_TASKS)
    assert _listed(result.stdout)[1]["tiny"] == ["tiny_gen", "tiny_mc"]


def test_tasks_with_a_missing_task_dir_is_one_line(tmp_path):
    result = evalsuite("tasks", "--task-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"task directory {tmp_path / 'nowhere'} does not exist" in _one_line(result.stderr)


# make-example

METHODS = ("lora", "rslora", "rasa", "mora")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """``evalsuite make-example`` with its default output, ``example`` in the working dir."""
    cwd = tmp_path_factory.mktemp("make-example")
    help_text = _one_line(_ok(evalsuite("make-example", "--help")).stdout)
    assert "LoRA / rsLoRA / RaSA / MoRA runs (3 epochs each)" in help_text
    assert "suite 'tiny'" in help_text and "[default: example]" in help_text
    result = _ok(evalsuite("make-example", cwd=cwd))
    out = cwd / "example"
    said = result.stderr
    assert f"tiny base model: {Path('example') / 'base'}" in said
    for method in METHODS:
        assert f"{method}: " in said
    return out


def test_make_example_writes_what_its_help_says(example):
    assert sorted(p.name for p in example.iterdir()) == [
        "base",
        *(f"run-{m}" for m in sorted(METHODS)),
        "tasks",
    ]
    config = json.loads((example / "base" / "config.json").read_text())
    assert config["model_type"] == "llama"
    model = load_model(example / "base")  # a base transformers loads, tokenizer beside it
    assert sum(p.numel() for p in model.parameters()) > 0
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(example / "base")("def f():")["input_ids"]
    for method in METHODS:
        checkpoints = sorted((example / f"run-{method}").iterdir(), key=lambda p: p.name)
        assert [c.name for c in checkpoints] == ["checkpoint-10", "checkpoint-20", "checkpoint-30"]
        for epoch, ckpt in enumerate(checkpoints, start=1):
            state = json.loads((ckpt / "trainer_state.json").read_text())
            assert (state["epoch"], state["global_step"]) == (float(epoch), 10 * epoch)
            assert (ckpt / "adapter_config.json").is_file()
            assert (ckpt / "adapter_model.safetensors").is_file()
    # PEFT loads the example's LoRA with its base from here, not only from where it was made
    from peft import AutoPeftModelForCausalLM

    assert Path.cwd() != example.parent
    peft_model = AutoPeftModelForCausalLM.from_pretrained(example / "run-lora" / "checkpoint-30")
    assert peft_model.peft_config["default"].r == 8
    assert _yaml_suites(example / "tasks") == {"tiny": ["tiny_gen", "tiny_mc"]}
    assert sorted(_yaml_tasks(example / "tasks")) == ["tiny_gen", "tiny_mc"]


@pytest.mark.parametrize(("method", "step"), [("lora", 10), ("rslora", 20), ("rasa", 30),
                                              ("mora", 30)])  # fmt: skip
def test_make_example_checkpoints_are_what_adapter_info_reads(example, method, step):
    ckpt = example / f"run-{method}" / f"checkpoint-{step}"
    info = json.loads(_ok(evalsuite("adapter", "info", "--json", str(ckpt))).stdout)
    assert info["kind"] == method
    assert (info["epoch"], info["step"]) == (step / 10, step)
    # absolute: PEFT finds the base from any working directory (make-example ran in another)
    assert info["base_model"] == str((example / "base").resolve())
    assert info["r"] == 8 and info["num_layers"] == 3
    assert info["exportable_as_lora"] is (method != "mora")


def test_make_example_tasks_are_listed(example):
    result = _ok(evalsuite("tasks", "--task-dir", str(example / "tasks")))
    _check_listing(result.stdout, TASKS, example / "tasks")


@pytest.mark.slow
def test_make_example_output_evaluates(example, tmp_path):
    """The README's first steps: eval a RaSA checkpoint of the example on suite 'tiny'."""
    ckpt = example / "run-rasa" / "checkpoint-30"
    out = tmp_path / "results"
    _ok(evalsuite("eval", "--base", str(example / "base"), "--adapter", str(ckpt),
                  "--suite", "tiny", "--task-dir", str(example / "tasks"), "--engine", "hf",
                  "--limit", "2", "--out", str(out), "--quiet"))  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["checkpoint"]["kind"] == "rasa"
    assert (results["checkpoint"]["epoch"], results["checkpoint"]["step"]) == (3.0, 30)
    assert results["partial"] is True
    assert sorted(results["tasks"]) == ["tiny_gen", "tiny_mc"]
    gen, mc = results["tasks"]["tiny_gen"], results["tasks"]["tiny_mc"]
    assert set(gen["metrics"]) == {"exact_match"} and set(mc["metrics"]) >= {"acc", "acc_norm"}
    assert gen["metrics"]["exact_match"]["n"] == 2 * 4  # 2 documents x n=4 samples
    assert mc["metrics"]["acc"]["n"] == 2
    for task, entry in results["tasks"].items():
        rows = (out / f"samples_{task}.jsonl").read_text().splitlines()
        assert len(rows) == entry["metrics"][next(iter(entry["metrics"]))]["n"]
        for metric in entry["metrics"].values():
            assert 0.0 <= metric["value"] <= 1.0
