"""How the merge reads and writes: dtypes, shards, pass-through tensors, metadata, atomicity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import load_model, logits_of
from safetensors.torch import load_file

from evalsuite.adapters import FullCheckpoint, load, merge
from evalsuite.testing.checkpoints import trainer_dir


def test_bf16_output_is_one_cast_of_the_fp32_merge(rasa_checkpoint, tiny_base, tmp_path):
    fp32 = merge(tiny_base, rasa_checkpoint, tmp_path / "fp32")
    bf16 = merge(tiny_base, rasa_checkpoint, tmp_path / "bf16", dtype="bfloat16")
    a, b = load_file(fp32 / "model.safetensors"), load_file(bf16 / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert b[name].dtype == torch.bfloat16
        assert torch.equal(b[name], a[name].to(torch.bfloat16)), name
    cfg = json.loads((bf16 / "config.json").read_text())
    assert cfg["torch_dtype"] == "bfloat16"
    assert json.loads((bf16 / "merge_info.json").read_text())["dtype"] == "bfloat16"


def test_bf16_adapter_is_merged_in_fp32(lora_checkpoint, tiny_base, tmp_path):
    """A bf16 adapter on disk: each factor is raised to fp32 before the product."""
    adapter = load(lora_checkpoint)
    out = merge(tiny_base, lora_checkpoint, tmp_path / "m")
    merged = load_file(out / "model.safetensors")
    base = load_file(tiny_base / "model.safetensors")
    sd = load_file(lora_checkpoint / "adapter_model.safetensors")
    name = "model.layers.1.mlp.down_proj"
    a = sd[f"base_model.model.{name}.lora_A.weight"].float()
    b = sd[f"base_model.model.{name}.lora_B.weight"].float()
    expected = base[f"{name}.weight"] + (b @ a) * adapter.scaling
    assert torch.equal(merged[f"{name}.weight"], expected)


@pytest.mark.parametrize("threads", [1, 3])
def test_row_blocks_and_threads_give_the_whole_tensor_result(
    threads, lora_checkpoint, tiny_base, tmp_path, monkeypatch
):
    """Blocks of a few rows, written in place by several threads, in bf16: bitwise one cast
    of base + (B @ A) * s computed here on whole tensors (blocks must neither overlap nor
    leave a gap, and each element gets the whole-tensor arithmetic)."""
    import evalsuite.adapters.merge  # noqa: F401  (the package re-exports merge, the function)

    module = sys.modules["evalsuite.adapters.merge"]
    monkeypatch.setattr(module, "ROW_BLOCK_BYTES", 3 * 4 * 64)  # 3 rows of 64 fp32 inputs
    monkeypatch.setattr(module, "merge_threads", lambda: threads)
    adapter = load(lora_checkpoint)
    out = merge(tiny_base, lora_checkpoint, tmp_path / "m", dtype="bfloat16")
    merged = load_file(out / "model.safetensors")
    base = load_file(tiny_base / "model.safetensors")
    sd = load_file(lora_checkpoint / "adapter_model.safetensors")
    for name in adapter.modules:
        a = sd[f"base_model.model.{name}.lora_A.weight"].float()
        b = sd[f"base_model.model.{name}.lora_B.weight"].float()
        w = base[f"{name}.weight"].float()
        assert w.shape[0] > 3 * threads, "the tensor must span several blocks per thread"
        expected = (w + (b @ a) * adapter.scaling).to(torch.bfloat16)
        assert torch.equal(merged[f"{name}.weight"], expected), name


def test_untouched_tensors_are_byte_identical(peft_checkpoint, tiny_base, tmp_path):
    out = merge(tiny_base, peft_checkpoint("lora"), tmp_path / "m")
    merged, base = load_file(out / "model.safetensors"), load_file(tiny_base / "model.safetensors")
    untouched = [n for n in base if not n.endswith("_proj.weight")]
    assert "model.embed_tokens.weight" in untouched and "lm_head.weight" in untouched
    for name in untouched:
        assert torch.equal(merged[name], base[name]), name
    changed = [
        n for n in base if n.endswith("_proj.weight") and not torch.equal(merged[n], base[n])
    ]
    assert len(changed) == 21


def test_sharded_base_keeps_its_shards_and_index(rasa_checkpoint, tiny_base, token_batch, tmp_path):
    from transformers import AutoTokenizer

    sharded = tmp_path / "sharded-base"
    load_model(tiny_base).save_pretrained(sharded, max_shard_size="200KB")
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(sharded)
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 2
    out = merge(sharded, rasa_checkpoint, tmp_path / "m")
    assert sorted(p.name for p in out.glob("*.safetensors")) == shards
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert (
        index["weight_map"]
        == json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"]
    )
    assert index["metadata"]["total_size"] == sum((out / s).stat().st_size for s in shards) - sum(
        8 + int.from_bytes((out / s).read_bytes()[:8], "little") for s in shards
    )
    single = merge(tiny_base, rasa_checkpoint, tmp_path / "single")
    assert torch.equal(
        logits_of(load_model(out), token_batch), logits_of(load_model(single), token_batch)
    )


def test_merge_info_and_sidecars(rasa_checkpoint, tiny_base, tmp_path):
    out = merge(tiny_base, rasa_checkpoint, tmp_path / "m")
    info = json.loads((out / "merge_info.json").read_text())
    assert info["adapter_kind"] == "rasa"
    assert info["adapter_sha256"] == load(rasa_checkpoint).sha256()
    assert info["dtype"] == "float32" and info["modules_merged"] == 21
    assert (info["epoch"], info["step"]) == (3.0, 60)
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (out / name).read_bytes() == (tiny_base / name).read_bytes()


def test_sha256_changes_with_content(rasa_checkpoint, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(rasa_checkpoint, copy)
    assert load(copy).sha256() == load(rasa_checkpoint).sha256()
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["rasa_alpha"] = 17
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    assert load(copy).sha256() != load(rasa_checkpoint).sha256()


def test_full_fine_tune_passes_through(tiny_base, tmp_path):
    ckpt = trainer_dir(tmp_path / "run-fft", step=100, epoch=1.0)
    for f in tiny_base.iterdir():
        shutil.copy2(f, ckpt / f.name)
    full = load(ckpt)
    assert isinstance(full, FullCheckpoint) and full.kind == "full"
    assert full.info()["trainable_params"] == sum(
        t.numel() for t in load_file(tiny_base / "model.safetensors").values()
    )
    out = merge(tmp_path / "unused-base", ckpt, tmp_path / "m")
    assert (out / "model.safetensors").read_bytes() == (ckpt / "model.safetensors").read_bytes()
    assert json.loads((out / "merge_info.json").read_text())["adapter_kind"] == "full"


def test_existing_output_is_kept_unless_overwrite(rasa_checkpoint, tiny_base, tmp_path):
    from evalsuite.adapters import AdapterError

    out = tmp_path / "m"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(AdapterError, match="--overwrite"):
        merge(tiny_base, rasa_checkpoint, out)
    assert (out / "precious.txt").read_text() == "keep me"
    merge(tiny_base, rasa_checkpoint, out, overwrite=True)
    assert not (out / "precious.txt").exists() and (out / "merge_info.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporaries left behind


def test_cli_merge_end_to_end(rasa_checkpoint, tiny_base, token_batch, tmp_path):
    out = tmp_path / "cli-merged"
    cmd = [
        sys.executable,
        "-m",
        "evalsuite.cli",
        "merge",
        "--base",
        str(tiny_base),
        "--adapter",
        str(rasa_checkpoint),
        "--out",
        str(out),
        "--dtype",
        "float32",
        "--quiet",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "merged rasa (21 modules)" in done.stderr
    direct = merge(tiny_base, rasa_checkpoint, tmp_path / "direct")
    assert torch.equal(
        logits_of(load_model(out), token_batch), logits_of(load_model(direct), token_batch)
    )
