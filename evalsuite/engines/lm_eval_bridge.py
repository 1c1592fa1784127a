"""lm-eval's ``LM`` over an already-loaded engine, so a job loads its checkpoint once.

Subclassing ``TemplateLM`` keeps lm-eval's own request encoding (context/continuation split,
empty contexts, whitespace); only token scoring and generation go to our engine. Token
encoding mirrors lm-eval's HF model, so numbers equal ``simple_evaluate(model="hf")``.
"""

from __future__ import annotations

from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from evalsuite.engines.base import Engine, GenerationRequest


class EngineLM(TemplateLM):
    def __init__(self, engine: Engine, seed: int = 0):
        super().__init__()
        self.engine = engine
        self.seed = seed
        self._bos_text = None
        self.cut_requests = 0  # loglikelihood requests that lost context to the limit

    @property
    def eot_token_id(self) -> int:
        return self.engine.eot_token_id

    @property
    def prefix_token_id(self) -> int:
        return self.engine.prefix_token_id

    @property
    def max_length(self) -> int:
        return self.engine.max_length

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **kwargs
    ) -> list[int]:
        if add_special_tokens is None:
            # as lm-eval's HF model: no second BOS when the text already starts with one
            if self._bos_text is None:
                self._bos_text = self.tok_decode([self.prefix_token_id])
            add_special_tokens = not (self._bos_text and string.startswith(self._bos_text))
        return self.engine.tokenize([string], add_special_tokens)[0]

    def tok_decode(self, tokens: list[int]) -> str:
        tokenizer = getattr(self.engine, "tokenizer", None)
        return tokenizer.decode(tokens) if tokenizer is not None else ""

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        pairs = [(ctx, cont) for _, ctx, cont in requests]
        self.cut_requests += self.engine.cut_by_limit(pairs)
        return self.engine.loglikelihood_tokens(pairs)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        pairs, owner = [], []
        for i, request in enumerate(requests):
            (text,) = request.args
            windows = get_rolling_token_windows(
                token_list=self.tok_encode(text, add_special_tokens=False),
                prefix_token=self.prefix_token_id,
                max_seq_len=self.engine.rolling_window,  # windows fit: nothing is cut
                context_len=1,
            )
            for window in map(make_disjoint_window, windows):
                pairs.append(window)
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (logprob, _) in zip(owner, self.engine.loglikelihood_tokens(pairs), strict=True):
            totals[i] += logprob
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        batch = []
        for request in requests:
            context, kwargs = request.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            sampled = bool(kwargs.get("do_sample", False)) and kwargs.get("temperature", 1.0) > 0
            batch.append(
                GenerationRequest(
                    prompt=context,
                    temperature=float(kwargs.get("temperature", 1.0)) if sampled else 0.0,
                    top_p=float(kwargs.get("top_p", 1.0)),
                    max_tokens=int(kwargs.get("max_gen_toks", 256)),
                    stop=tuple(until),
                    seed=self.seed,
                )
            )
        return [completions[0].text for completions in self.engine.generate(batch)]
