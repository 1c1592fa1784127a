"""The lm-eval bridge over our engines gives lm-eval's own HF model's numbers."""

from __future__ import annotations

import pytest
from conftest import requires_vllm
from lm_eval.api.instance import Instance

from evalsuite.engines import EngineProcess, EngineSpec
from evalsuite.engines.lm_eval_bridge import EngineLM

PAIRS = [
    ("The answer is:", " 42."),
    ("def add(a, b):", "\n    return a + b"),
    ("", "hello world"),
    ("import json ", "json.dumps({})"),
    ("Question: what is 1/2?\nAnswer:", " 0.5"),
]
TEXTS = ["def add(a, b):\n    return a + b\n" * 3, "The answer is: 42."]
CONTEXTS = ["def add(a, b):\n", "import json\n"]


def _instances(kind: str, args: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


@pytest.fixture(scope="module")
def hflm(tiny_base):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(tiny_base), dtype="float32", batch_size=4, device="cpu")


@pytest.fixture(scope="module", params=["hf", "vllm"])
def bridge(request, tiny_base):
    if request.param == "vllm":
        requires_vllm()
    with EngineProcess(EngineSpec(request.param, str(tiny_base), max_model_len=512)) as engine:
        yield EngineLM(engine)


def test_loglikelihood_equals_lm_evals_hf_model(bridge, hflm):
    ours = bridge.loglikelihood(_instances("loglikelihood", PAIRS))
    theirs = hflm.loglikelihood(_instances("loglikelihood", PAIRS))
    for (a, ga), (b, gb) in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb


def test_rolling_loglikelihood_equals_lm_evals_hf_model(bridge, hflm):
    ours = bridge.loglikelihood_rolling(_instances("loglikelihood_rolling", [(t,) for t in TEXTS]))
    theirs = hflm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(t,) for t in TEXTS]))
    assert ours == pytest.approx(theirs, abs=1e-4)


def test_greedy_generate_until_equals_lm_evals_hf_model(bridge, hflm):
    kwargs = {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": False}
    args = [(c, dict(kwargs)) for c in CONTEXTS]
    ours = bridge.generate_until(_instances("generate_until", args))
    theirs = hflm.generate_until(
        _instances("generate_until", [(c, dict(kwargs)) for c in CONTEXTS])
    )
    assert ours == theirs
