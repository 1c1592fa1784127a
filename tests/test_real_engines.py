"""The two engines on the real model, fp32: greedy completions of 20 MATH prompts are
identical up to the first near-tie (the two best next tokens within NEAR_TIE in logprob,
where fp32 rounding may pick either; such divergences are listed), and both stop at the
context limit (``max_model_len`` 512 here) with finish_reason "length"."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHARED_DATA, requires_vllm

from evalsuite.engines import EngineProcess, EngineSpec, GenerationRequest

PROMPTS = 20
NEW_TOKENS = 16
NEAR_TIE = 1e-4
CONTEXT = 512
TEMPLATE = "Below is an instruction that describes a task. Write a response that appropriately "
TEMPLATE += (
    "completes the request.\n\n### Instruction:\n{}\n\n### Response:\nLet's think step by step."
)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the benchmark data folder {SHARED_DATA} is not here")
    lines = (SHARED_DATA / "math500" / "test.jsonl").read_text().splitlines()[:PROMPTS]
    return [TEMPLATE.format(json.loads(line)["problem"].strip()) for line in lines]


@pytest.fixture(scope="module")
def both(smollm2, prompts):
    """Greedy completions and context-limit runs from each engine, one engine at a time."""
    requires_vllm()
    long_prompt = "Count with me: " + " ".join(str(i) for i in range(145))  # 474 tokens
    requests = [GenerationRequest(p, max_tokens=NEW_TOKENS) for p in prompts]
    out = {}
    for kind in ("hf", "vllm"):
        spec = EngineSpec(kind, str(smollm2), dtype="float32", max_model_len=CONTEXT)
        with EngineProcess(spec) as engine:
            (ids,) = engine.tokenize([long_prompt])
            limit = engine.generate([GenerationRequest(long_prompt, max_tokens=400)])[0][0]
            out[kind] = ([c[0] for c in engine.generate(requests)], len(ids), limit)
    return out


def _common_prefix(a: str, b: str) -> str:
    n = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return a[:n]


def _gap_after(model, tok, text: str) -> float:
    """Logprob gap between the two best next tokens after ``text`` (transformers, fp32)."""
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
    top = logprobs.topk(2).values
    return float(top[0] - top[1])


def test_greedy_completions_agree_up_to_near_ties(both, smollm2, prompts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf, vl = both["hf"][0], both["vllm"][0]
    differ = [i for i in range(PROMPTS) if hf[i].text != vl[i].text]
    divergences = []
    if differ:
        model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(smollm2)
        for i in differ:
            common = _common_prefix(hf[i].text, vl[i].text)
            divergences.append((i, len(common), _gap_after(model, tok, prompts[i] + common)))
    print(f"{PROMPTS - len(differ)}/{PROMPTS} identical; divergences (prompt, chars, gap): "
          f"{divergences}")  # fmt: skip
    assert all(gap < NEAR_TIE for *_, gap in divergences), divergences
    assert len({c.text for c in hf}) == PROMPTS  # real, prompt-dependent answers


def test_both_engines_stop_at_the_context_limit(both):
    for kind in ("hf", "vllm"):
        _, prompt_len, limit = both[kind]
        assert 400 < prompt_len < CONTEXT
        assert limit.finish_reason == "length", kind
        assert limit.num_tokens == CONTEXT - prompt_len, kind
    assert both["hf"][2].text == both["vllm"][2].text
