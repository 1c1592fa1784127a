"""A hostile checkpoint, attacked from outside through the real CLI, one fresh process each.

What a checkpoint claims (a safetensors header, a JSON file's content, where a symlink points)
is checked against the file before anything is allocated or followed: every case ends with
exit code 2 and one line naming the file and the problem, and the process's peak RSS (read
by a small launcher process, ``_LAUNCHER``) stays near an honest checkpoint's. Before these
checks, a 150-byte file whose header claimed 3 GiB took 3.4 GB and a sparse 2 GiB
trainer_state.json 4.5 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from evalsuite.adapters.checkpoint_files import JSON_CAPS
from evalsuite.adapters.safetensors_io import save_tensors

EXE = Path(sys.executable).with_name("evalsuite")
WEIGHTS = "adapter_model.safetensors"
KEY = "base_model.model.model.layers.0.self_attn.q_proj"
GIB = 1 << 30
# What a refused checkpoint may cost beyond an honest one: the header and error handling, not
# the claimed tensor. Relative, not the finding's absolute 300 MB: importing torch alone is
# ~230 MB resident (CPU build; more with CUDA), so that bound would measure the torch build
# and the machine's load more than this code (an honest `adapter info` peaks at ~275 MB).
HEADROOM_MB = 64


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    peak_mb: float


# Runs the command and writes its peak RSS (KB). The measuring parent must be small: Linux
# carries the RSS of the process that forks and execs into the child's ru_maxrss, so measured
# straight from pytest (torch and transformers loaded) every child would "peak" at pytest's size.
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[3:], timeout=float(sys.argv[2]))
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_cli(*args: str | Path, timeout: float = 120) -> Outcome:
    """Run ``evalsuite ARGS`` in a fresh process; its exit code, output and peak RSS."""
    env = {**os.environ, "COLUMNS": "10000"}  # one error line, not wrapped at 80 columns
    with tempfile.NamedTemporaryFile("r") as peak:
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, peak.name, str(timeout), str(EXE), *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout + 30,
        )
        peak_kb = int(peak.read() or 0)
    return Outcome(done.returncode, done.stdout, done.stderr, peak_kb / 1024)


CONFIG = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}


def make_adapter(directory: Path) -> Path:
    """An honest rank-2 LoRA of one 8x8 module, with its trainer_state.json."""
    directory.mkdir(parents=True)
    tensors = {f"{KEY}.lora_A.weight": torch.randn(2, 8), f"{KEY}.lora_B.weight": torch.randn(8, 2)}
    save_tensors(directory / WEIGHTS, tensors)
    (directory / "adapter_config.json").write_text(json.dumps(CONFIG))
    (directory / "trainer_state.json").write_text(json.dumps({"epoch": 1.0, "global_step": 10}))
    return directory


def write_raw(path: Path, header: dict, data: bytes = b"", header_len: int | None = None) -> None:
    """A safetensors file with exactly this header and data: whatever it claims."""
    blob = json.dumps(header).encode()
    size = len(blob) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", size) + blob + data)


def tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.fixture(scope="module")
def honest_peak(tmp_path_factory) -> float:
    """Peak RSS (MB) of ``adapter info`` on an honest checkpoint: what a refusal may cost."""
    ckpt = make_adapter(tmp_path_factory.mktemp("honest") / "checkpoint-10")
    done = run_cli("adapter", "info", "--json", ckpt)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["epoch"] == 1.0
    return done.peak_mb


def assert_refused(done: Outcome, honest_peak: float, *words: str) -> None:
    """Exit 2, one line naming ``words``, no traceback, and no allocation from the claim."""
    assert done.code == 2, (done.code, done.stderr)
    assert "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    assert 0 < done.peak_mb < honest_peak + HEADROOM_MB, (done.peak_mb, honest_peak)


def test_header_claiming_3_gib_in_150_bytes(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    claim = tensor("F32", [3 * GIB // 4], 0, 3 * GIB)
    write_raw(ckpt / WEIGHTS, {f"{KEY}.lora_A.weight": claim})
    assert (ckpt / WEIGHTS).stat().st_size < 160
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, str(ckpt / WEIGHTS), f"{KEY}.lora_A.weight", "past the end")


def test_merge_refuses_the_same_before_writing(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    write_raw(ckpt / WEIGHTS, {f"{KEY}.lora_A.weight": tensor("F32", [3 * GIB // 4], 0, 3 * GIB)})
    out = tmp_path / "merged"
    done = run_cli("merge", "--base", tmp_path / "no-base", "--adapter", ckpt, "--out", out)
    assert_refused(done, honest_peak, str(ckpt / WEIGHTS), "past the end")
    assert not out.exists()


def test_header_length_beyond_the_file(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    write_raw(ckpt / WEIGHTS, {}, header_len=90_000_000)
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, str(ckpt / WEIGHTS), "header claims 90,000,000 bytes")


def test_header_over_the_safetensors_cap(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    write_raw(ckpt / WEIGHTS, {}, header_len=1 << 40)
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, str(ckpt / WEIGHTS), "over the 100,000,000-byte cap")


@pytest.mark.parametrize(
    ("tensors", "data_len", "words"),
    [
        ({"a": tensor("F32", [4], 0, 16), "b": tensor("F32", [4], 8, 24)}, 24, ["'b'", "overlaps"]),
        ({"a": tensor("F32", [4], 0, 16), "b": tensor("F32", [4], 24, 40)}, 40, ["8 bytes"]),
        ({"a": tensor("F32", [4], 0, 16)}, 24, ["8 bytes after the last tensor"]),
        ({"a": tensor("F32", [4], 0, 8)}, 8, ["'a'", "holds 8 bytes", "needs 16"]),
        ({"a": tensor("F32", [4], 16, 0)}, 16, ["'a'", "begin after end"]),
        ({"a": tensor("F32", [-4], 0, 16)}, 16, ["'a'", "not a list of non-negative integers"]),
        ({"a": tensor("Q4", [4], 0, 16)}, 16, ["'a'", "unsupported dtype 'Q4'"]),
        ({"a": tensor("F32", [1 << 62, 1 << 62], 0, 16)}, 16, ["'a'", "needs"]),
    ],
    ids=["overlap", "gap", "trailing", "size-mismatch", "reversed", "shape", "dtype", "huge-shape"],
)
def test_inconsistent_headers(tmp_path, honest_peak, tensors, data_len, words):
    ckpt = make_adapter(tmp_path / "ckpt")
    write_raw(ckpt / WEIGHTS, tensors, bytes(data_len))
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, str(ckpt / WEIGHTS), *words)


@pytest.mark.parametrize("name", ["trainer_state.json", "adapter_config.json"])
def test_sparse_2_gib_json(tmp_path, honest_peak, name):
    ckpt = make_adapter(tmp_path / "ckpt")
    with open(ckpt / name, "r+b") as f:
        f.truncate(2 * GIB)  # sparse: costs no disk
    done = run_cli("adapter", "info", ckpt)
    assert_refused(
        done, honest_peak, str(ckpt / name), "2,147,483,648 bytes", f"{JSON_CAPS[name]:,}"
    )


@pytest.mark.parametrize("name", [WEIGHTS, "adapter_config.json", "trainer_state.json"])
def test_symlink_to_etc_passwd_is_refused_by_name(tmp_path, honest_peak, name):
    ckpt = make_adapter(tmp_path / "ckpt")
    (ckpt / name).unlink()
    (ckpt / name).symlink_to("/etc/passwd")
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, f"{ckpt / name} -> /etc/passwd", "leaves the checkpoint")


def test_relative_symlink_out_of_the_directory_is_refused(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    elsewhere = make_adapter(tmp_path / "other")  # an honest file, but not this checkpoint's
    (ckpt / WEIGHTS).unlink()
    (ckpt / WEIGHTS).symlink_to(Path("..") / "other" / WEIGHTS)
    done = run_cli("adapter", "info", ckpt)
    assert_refused(done, honest_peak, f"-> ../other/{WEIGHTS}", str(elsewhere.resolve() / WEIGHTS))


def test_symlink_inside_the_directory_is_followed(tmp_path):
    ckpt = make_adapter(tmp_path / "ckpt")
    (ckpt / "blobs").mkdir()
    (ckpt / WEIGHTS).rename(ckpt / "blobs" / "weights")
    (ckpt / WEIGHTS).symlink_to(Path("blobs") / "weights")
    done = run_cli("adapter", "info", "--json", ckpt)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["trainable_params"] == 32


def test_fifo_is_refused_without_hanging(tmp_path, honest_peak):
    ckpt = make_adapter(tmp_path / "ckpt")
    (ckpt / "trainer_state.json").unlink()
    os.mkfifo(ckpt / "trainer_state.json")
    done = run_cli("adapter", "info", ckpt, timeout=60)
    assert_refused(done, honest_peak, str(ckpt / "trainer_state.json"), "not a regular file")


def _to_bin(ckpt: Path, **save_options) -> Path:
    from safetensors.torch import load_file

    torch.save(load_file(ckpt / WEIGHTS), ckpt / "adapter_model.bin", **save_options)
    (ckpt / WEIGHTS).unlink()
    return ckpt / "adapter_model.bin"


def test_torch_bin_weights(tmp_path, honest_peak):
    honest = make_adapter(tmp_path / "honest")
    _to_bin(honest)
    done = run_cli("adapter", "info", "--json", honest)
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["trainable_params"] == 32

    legacy = make_adapter(tmp_path / "legacy")  # sizes come from the pickle: refused
    _to_bin(legacy, _use_new_zipfile_serialization=False)
    assert_refused(run_cli("adapter", "info", legacy), honest_peak, "not a torch.save zip")

    bomb = make_adapter(tmp_path / "bomb")
    with zipfile.ZipFile(_to_bin(bomb), "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data/9", bytes(64 << 20))  # 64 MB in ~64 KB
    assert (bomb / "adapter_model.bin").stat().st_size < 1 << 20
    assert_refused(run_cli("adapter", "info", bomb), honest_peak, "'archive/data/9'", "compressed")


def _hf_cache_snapshot(base: Path, root: Path) -> Path:
    """``base`` laid out as a Hugging Face cache: snapshots/<rev>/<file> -> ../../blobs/<file>."""
    snapshot, blobs = root / "snapshots" / "abc123", root / "blobs"
    snapshot.mkdir(parents=True)
    shutil.copytree(base, blobs)
    for f in blobs.iterdir():
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / f.name)
    return snapshot


def test_base_may_be_symlinks_but_a_full_checkpoint_may_not(tmp_path, tiny_base, honest_peak):
    """The confinement is for checkpoints handed to us: a base in a HF cache snapshot still
    merges, while a full fine-tune whose tokenizer links out is refused, nothing copied."""
    from evalsuite.testing.checkpoints import TARGETS, write_lora

    base = _hf_cache_snapshot(tiny_base, tmp_path / "hub")
    adapter = write_lora(tmp_path / "lora", tiny_base, TARGETS)
    done = run_cli(
        "merge", "--base", base, "--adapter", adapter, "--out", tmp_path / "m", "--quiet"
    )
    assert done.code == 0, done.stderr
    assert (tmp_path / "m" / "merge_info.json").is_file()

    full = tmp_path / "full"
    shutil.copytree(tiny_base, full)
    secret = tmp_path / "secret.json"
    secret.write_text('{"not": "yours"}')
    (full / "tokenizer_config.json").unlink()
    (full / "tokenizer_config.json").symlink_to(secret)
    out = tmp_path / "m2"
    done = run_cli("merge", "--base", base, "--adapter", full, "--out", out, "--quiet")
    assert_refused(done, honest_peak, f"{full / 'tokenizer_config.json'} -> {secret}")
    assert not out.exists()
