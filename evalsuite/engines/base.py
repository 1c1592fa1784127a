"""The one small interface every text engine offers the runner.

``generate`` takes all requests of a task at once (so vLLM can batch and share prefixes) and
reports each request as soon as it finishes through ``on_done``: the runner appends it to its
resume cache, so a crash loses only unfinished requests. ``loglikelihood_tokens`` works on
token ids, because lm-eval encodes (context, continuation) pairs itself and our numbers must
equal its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evalsuite.comparable import DEFAULT_PLATFORM
from evalsuite.errors import EvalsuiteError


class EngineError(EvalsuiteError, RuntimeError):
    """The engine could not start or died; the message says what happened and what to do."""


class SwapRefused(EngineError):
    """New weights do not fit the running engine (``engines.swap``); nothing was written."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt and how to sample from it. ``top_k <= 0`` and ``seed=None`` mean off."""

    prompt: str
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = 0
    # Cap on prompt + generation tokens (the HumanEval protocol's 2048); None = no cap.
    max_total_tokens: int | None = None

    def sampling_dict(self) -> dict[str, Any]:
        """Everything but the prompt: recorded with results, part of the cache key."""
        d = asdict(self)
        d.pop("prompt")
        d["stop"] = list(self.stop)
        return d


# How a completion ended. An answer: "stop" (a stop string or EOS), "length" (the token
# budget or the context ran out), "repetition" (the engine cut a repeating pattern: vLLM's
# detector). Not an answer: "abort" (the engine dropped the request) and "error" (the
# engine failed it, e.g. a KV load failure): such a sample is a failure with its reason,
# never text to score, and it is not cached (a rerun asks again).
ANSWER_ENDINGS = ("stop", "length", "repetition")
FAILED_ENDINGS = ("abort", "error")
FINISH_REASONS = ANSWER_ENDINGS + FAILED_ENDINGS


def finish_reason_of(engine_reason: object) -> str:
    """An engine's finish reason as one of ``FINISH_REASONS`` (an unknown one is an error:
    nothing is scored that the engine did not say ended normally)."""
    reason = "" if engine_reason is None else str(engine_reason).lower()
    return reason if reason in FINISH_REASONS else "error"


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    finish_reason: str  # one of FINISH_REASONS

    @property
    def answered(self) -> bool:
        """Whether this is an answer to score (``FAILED_ENDINGS`` are not)."""
        return self.finish_reason in ANSWER_ENDINGS


OnDone = Callable[[int, list[Completion]], None]


@dataclass
class EngineInfo:
    """What ran: stored with every score so served and merged numbers are never mixed."""

    name: str
    version: str
    model: str
    dtype: str
    lora: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    # where it computed: cpu, cuda, rocm... (the CPU and CUDA builds of vLLM report the same
    # version but sample differently, so scores from each are compared only among themselves)
    platform: str = DEFAULT_PLATFORM


class Engine(ABC):
    """Text generation and loglikelihoods over one loaded model (optionally + one LoRA)."""

    info: EngineInfo

    @abstractmethod
    def generate(
        self, requests: Sequence[GenerationRequest], on_done: OnDone | None = None
    ) -> list[list[Completion]]:
        """n completions per request, in request order; ``on_done(i, completions)`` as each ends."""

    @abstractmethod
    def loglikelihood_tokens(
        self, pairs: Sequence[tuple[list[int], list[int]]]
    ) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether it is the greedy continuation)."""

    @abstractmethod
    def tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids from the engine's tokenizer, special tokens added as the tokenizer would
        (lm-eval's HF model does the same unless told otherwise)."""

    @property
    @abstractmethod
    def eot_token_id(self) -> int:
        """End-of-text id."""

    @property
    @abstractmethod
    def prefix_token_id(self) -> int:
        """What stands in for an empty context: BOS if the tokenizer has one, else EOT."""

    @property
    @abstractmethod
    def max_length(self) -> int:
        """Longest sequence (prompt + generation) the engine accepts."""

    @property
    def loglikelihood_limit(self) -> int:
        """Longest context + continuation scored whole; a longer one loses the start of its
        context (lm-eval's rule for this kind of model). The hf rule: the model reads all but
        the last token, so ``max_length + 1``."""
        return self.max_length + 1

    @property
    def rolling_window(self) -> int:
        """Tokens per window of ``loglikelihood_rolling`` (lm-eval's ``max_seq_len``)."""
        return self.max_length

    def cut_by_limit(self, pairs: Sequence[tuple[list[int], list[int]]]) -> int:
        """How many of these pairs lose context to ``loglikelihood_limit`` (counted in the
        results, never scored silently)."""
        return sum(len(ctx) + len(cont) > self.loglikelihood_limit for ctx, cont in pairs)

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """String pairs, encoded exactly as lm-eval's HF model encodes them."""
        return self.loglikelihood_tokens([self.encode_pair(c, x) for c, x in pairs])

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's rule (TemplateLM): trailing context spaces move to the continuation, the
        continuation's ids are the tail of the whole string's ids, and an empty context becomes
        the prefix token in front of the continuation encoded without special tokens."""
        if not context:
            return [self.prefix_token_id], self.tokenize([continuation], False)[0]
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole, ctx = self.tokenize([context + continuation, context])
        return ctx, whole[len(ctx) :]

    def swap_weights(self, model_dir: str) -> None:
        """Load another model's weights into the running engine and drop every cache computed
        with the old ones; raises ``SwapRefused`` (nothing written) when they do not fit."""
        raise EngineError(f"the {self.info.name} engine cannot swap weights in place")

    def swap_lora(self, lora_dir: str, lora_name: str) -> None:
        """Serve another LoRA adapter from now on (LoRA-served engines); caches are dropped."""
        raise EngineError(f"the {self.info.name} engine cannot swap its LoRA adapter")

    @abstractmethod
    def reset_cache(self) -> None:
        """Forget everything computed for earlier requests (vLLM's prefix cache), so the next
        checkpoint's answers are computed as on a fresh engine."""

    @abstractmethod
    def close(self) -> None:
        """Free the model (a child process's engine is also freed when the child exits)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TokenizerInEngine:
    """Token ids both in-process engines read off their Hugging Face tokenizer (``self.tokenizer``)
    and the sequence limit they settle at start (``self._max_length``)."""

    tokenizer: Any
    _max_length: int

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string (vLLM's semantics: the stop string is not kept)."""
    cut = min((i for s in stop if (i := text.find(s)) != -1), default=-1)
    return (text[:cut], True) if cut != -1 else (text, False)
