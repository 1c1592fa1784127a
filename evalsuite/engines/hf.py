"""transformers engine: the fallback where vLLM is missing, and the reference in tests.

Same semantics as the vLLM engine: stop strings cut the text (not kept), ``seed`` seeds each
request on its own so a request's samples do not depend on what else is in the batch, greedy
requests with n > 1 are decoded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from evalsuite.engines.base import (
    Completion,
    Engine,
    EngineInfo,
    GenerationRequest,
    OnDone,
    SwapRefused,
    TokenizerInEngine,
    cut_at_stop,
)
from evalsuite.engines.swap import model_shape, swap_refusal


class _StopOnStrings:
    """Per-sequence stopping once any stop string appears in the generated text."""

    def __init__(self, tokenizer, prompt_len: int, stop: Sequence[str]):
        self.tokenizer, self.prompt_len, self.stop = tokenizer, prompt_len, list(stop)

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_len :], skip_special_tokens=True
        )
        done = [any(s in t for s in self.stop) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HfEngine(TokenizerInEngine, Engine):
    def __init__(
        self,
        model_dir: str,
        dtype: str = "float32",
        lora_dir: str | None = None,
        batch_size: int = 16,
        max_model_len: int | None = None,
    ):
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
        if lora_dir:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, lora_dir)
        self.model = model.eval()
        self._shape = model_shape(model_dir)
        self.batch_size = batch_size
        # The context limit, as vLLM's max_model_len: prompt + generation never pass it.
        self._max_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        if max_model_len is not None:
            self._max_length = min(self._max_length, max_model_len)
        self.info = EngineInfo(
            name="hf",
            version=transformers.__version__,
            model=str(model_dir),
            dtype=dtype,
            lora=str(lora_dir) if lora_dir else None,
            settings={"batch_size": batch_size, "max_model_len": self._max_length},
            platform=model.device.type,
        )

    # -- swapping -----------------------------------------------------------------------
    def swap_weights(self, model_dir: str) -> None:
        """Copy another model's tensors into the loaded parameters, after the files were
        checked; a tied output embedding follows its input embedding."""
        from safetensors.torch import load_file

        from evalsuite.adapters.model_files import read_model_weights

        new = model_shape(model_dir)
        refusal = swap_refusal(self._shape, new)
        if refusal is None and hasattr(self.model, "peft_config"):
            refusal = "the running engine serves a LoRA adapter on its base"
        if refusal:
            raise SwapRefused(f"cannot swap {model_dir} into the running engine: {refusal}")
        state: dict[str, torch.Tensor] = {}
        for shard in read_model_weights(Path(model_dir)).shards:
            state.update(load_file(shard))
        expected = set(self.model.state_dict())
        tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
        unexpected, missing = set(state) - expected, expected - set(state) - tied
        if unexpected or missing:
            raise SwapRefused(
                f"cannot swap {model_dir}: parameters differ from the running model's "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
        with torch.no_grad():
            self.model.load_state_dict(state, strict=False)
        self._shape = new
        self.info.model = str(model_dir)

    def swap_lora(self, lora_dir: str, lora_name: str) -> None:
        if not hasattr(self.model, "peft_config"):
            raise SwapRefused("the running engine was started without a LoRA adapter")
        old = self.model.active_adapter
        self.model.load_adapter(lora_dir, adapter_name=lora_name)
        self.model.set_adapter(lora_name)
        if old != lora_name:
            self.model.delete_adapter(old)
        self.model.eval()
        self.info.lora = str(lora_dir)

    def reset_cache(self) -> None:
        """Nothing to drop: each generate and scoring call starts from the prompt alone."""

    # -- tokens --------------------------------------------------------------------------
    def tokenize(self, texts, add_special_tokens=True):
        return [
            self.tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"] for t in texts
        ]

    # -- generation ----------------------------------------------------------------------
    def _budget(self, request: GenerationRequest, prompt_len: int) -> int:
        """New tokens allowed: stops at the context limit (finish "length") as vLLM does."""
        budget = min(request.max_tokens, self._max_length - prompt_len)
        if request.max_total_tokens is not None:
            budget = min(budget, request.max_total_tokens - prompt_len)
        return max(0, budget)

    def _run(self, ids: list[list[int]], request: GenerationRequest, n: int) -> list[Completion]:
        """One generate call over prompts of equal settings (left-padded), n samples each."""
        width = max(len(i) for i in ids)
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        budgets = [self._budget(request, len(i)) for i in ids]
        if max(budgets) == 0:
            return [Completion("", 0, "length") for _ in range(len(ids) * n)]
        sampled = request.temperature > 0
        kwargs = {
            "max_new_tokens": max(budgets),
            "do_sample": sampled,
            "num_return_sequences": n,
            "pad_token_id": pad,
            "eos_token_id": eos,
        }
        if sampled:
            top_k = request.top_k if request.top_k > 0 else 0
            kwargs.update(temperature=request.temperature, top_p=request.top_p, top_k=top_k)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs["stopping_criteria"] = [_StopOnStrings(self.tokenizer, width, request.stop)]
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        completions = []
        for j, row in enumerate(out[:, width:].tolist()):
            row = row[: budgets[j // n]]
            if eos in row:
                row = row[: row.index(eos) + 1]
            else:  # a sequence that stopped early is padded to the batch's length
                while row and row[-1] == pad:
                    row.pop()
            # vLLM holds back a trailing incomplete UTF-8 sequence; decode() shows it as U+FFFD
            text = self.tokenizer.decode(row, skip_special_tokens=True).rstrip("\ufffd")
            text, hit = cut_at_stop(text, request.stop)
            reason = "stop" if hit or (row and row[-1] == eos) else "length"
            completions.append(Completion(text, len(row), reason))
        return completions

    def generate(self, requests, on_done: OnDone | None = None):
        results: list[list[Completion] | None] = [None] * len(requests)
        prompt_ids = self.tokenize([r.prompt for r in requests])

        def finish(i: int, completions: list[Completion]) -> None:
            results[i] = completions
            if on_done:
                on_done(i, completions)

        greedy = [i for i, r in enumerate(requests) if r.temperature == 0]
        # Greedy requests share batches when they share settings; left padding keeps them exact.
        groups: dict[tuple, list[int]] = {}
        for i in greedy:
            key = (requests[i].max_tokens, requests[i].max_total_tokens, requests[i].stop)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            members.sort(key=lambda i: len(prompt_ids[i]))
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                outs = self._run([prompt_ids[i] for i in batch], requests[batch[0]], 1)
                for i, c in zip(batch, outs, strict=True):
                    finish(i, [c] * requests[i].n)
        for i, request in enumerate(requests):
            if request.temperature == 0:
                continue
            if request.seed is not None:
                torch.manual_seed(request.seed)
            samples: list[Completion] = []
            while len(samples) < request.n:
                chunk = min(self.batch_size, request.n - len(samples))
                samples += self._run([prompt_ids[i]], request, chunk)
            finish(i, samples)
        return results  # type: ignore[return-value]

    # -- scoring -------------------------------------------------------------------------
    def loglikelihood_tokens(self, pairs):
        results: list[tuple[float, bool]] = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start : start + self.batch_size]
            seqs = [(ctx + cont)[-(self.max_length + 1) :][:-1] for ctx, cont in batch]
            width = max(len(s) for s in seqs)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
            with torch.no_grad():
                logprobs = torch.log_softmax(
                    self.model(input_ids=input_ids, attention_mask=mask).logits.float(), dim=-1
                )
            for row, seq, (_, cont) in zip(logprobs, seqs, batch, strict=True):
                span = row[len(seq) - len(cont) : len(seq)]
                target = torch.tensor(cont)
                picked = span.gather(1, target.unsqueeze(1)).squeeze(1)
                greedy = bool((span.argmax(-1) == target).all())
                results.append((float(picked.sum()), greedy))
        return results

    def close(self) -> None:
        self.model = None
