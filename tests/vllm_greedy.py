"""Greedy token ids from real vLLM, as JSON:
``python vllm_greedy.py MODEL [LORA_DIR RANK [MAX_TOKENS]]`` (24 tokens unless given).

Prints ``TOKENS <json>`` for the model, and with a LoRA also ``LORA <json>`` for the same
prompts through the served LoRA (one engine for both).

Run as a child process by the tests: vLLM keeps global state and threads that must not leak
into the pytest process, and a child frees its memory when it exits.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
PROMPTS = ["def add(a, b):\n", "The answer is: ", "import json\n", "\\frac{1}{2} + x ="]


def main() -> None:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    model = sys.argv[1]
    lora = sys.argv[2] if len(sys.argv) > 2 else None
    kwargs = (
        {"enable_lora": True, "max_lora_rank": int(sys.argv[3]), "max_loras": 1} if lora else {}
    )
    llm = LLM(
        model=model,
        dtype="float32",
        max_model_len=256,
        seed=0,
        enforce_eager=True,
        kv_cache_memory_bytes=64 << 20,
        **kwargs,
    )
    max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 24
    params = SamplingParams(temperature=0, max_tokens=max_tokens, seed=0)
    runs = {"TOKENS": None}
    if lora:
        runs["LORA"] = LoRARequest("adapter", 1, lora)
    for label, request in runs.items():
        outputs = llm.generate(PROMPTS, params, lora_request=request, use_tqdm=False)
        print(label, json.dumps([list(o.outputs[0].token_ids) for o in outputs]))


if __name__ == "__main__":
    main()
