"""An engine living in a child process: for one job, or for a worker's jobs on one base.

vLLM does not reliably give GPU memory back inside a process, so the model lives in a child
that exits when the engine is closed. The child streams each finished request back as it
ends (and a tick per chunk of loglikelihoods), and a child that dies (out of memory, killed)
becomes an ``EngineError`` naming the signal, with every result already received kept by the
caller. With ``stall_s`` set, a child that sends nothing for that long while working is
killed and the call fails with that reason: a hung engine cannot hold a job forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import traceback
import uuid
from datetime import UTC, datetime

from evalsuite.engines.base import Engine, EngineError, SwapRefused
from evalsuite.engines.spec import EngineSpec


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies, so no engine outlives its job."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# loglikelihood pairs scored per tick: the child's sign of life on long lm-eval tasks
_TICK_PAIRS = 256


def _redirect_output(path: str) -> None:
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def _loglikelihoods(engine: Engine, pairs: list, conn) -> list:
    results: list = []
    for start in range(0, len(pairs), _TICK_PAIRS):
        results += engine.loglikelihood_tokens(pairs[start : start + _TICK_PAIRS])
        conn.send(("tick", len(results)))
    return results


def _serve(conn, spec: EngineSpec) -> None:
    _die_with_parent()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        engine = spec.build()
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    limits = (engine.max_length, engine.loglikelihood_limit, engine.rolling_window)
    conn.send(("ready", engine.info, engine.eot_token_id, engine.prefix_token_id, limits))
    while True:
        try:
            command, payload = conn.recv()
        except EOFError:
            break
        try:
            if command == "close":
                break
            if command == "generate":
                engine.generate(payload, lambda i, c: conn.send(("item", (i, c))))
                conn.send(("ok", None))
            elif command == "loglikelihood_tokens":
                conn.send(("ok", _loglikelihoods(engine, payload, conn)))
            elif command == "tokenize":
                conn.send(("ok", engine.tokenize(*payload)))
            elif command == "swap_weights":
                engine.swap_weights(payload)
                conn.send(("ok", engine.info))
            elif command == "swap_lora":
                engine.swap_lora(*payload)
                conn.send(("ok", engine.info))
            elif command == "reset_cache":
                engine.reset_cache()
                conn.send(("ok", None))
            elif command == "redirect":
                _redirect_output(payload)
                conn.send(("ok", None))
        except SwapRefused as e:
            conn.send(("refused", str(e)))
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"))
    engine.close()
    conn.close()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if code == -9 else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class EngineProcess(Engine):
    """Same interface as the engine it wraps; calls go over a pipe to the child.

    ``engine_id`` and ``started`` name this engine's life (recorded with every result it
    produced, so a score can be traced to the engine that made it); ``usable`` turns False
    once the child died or a call was cut short, and such an engine must be replaced.
    """

    def __init__(self, spec: EngineSpec, stall_s: float | None = None):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, spec), name=f"evalsuite-{spec.kind}")
        self._proc.start()
        child.close()  # so a dead child reads as EOF here
        self.spec = spec
        self.stall_s = stall_s
        self.engine_id = uuid.uuid4().hex[:12]
        self.started = datetime.now(UTC).replace(microsecond=0)
        self._broken = False
        self.failure: str | None = None  # why it became unusable, once it did
        kind, *rest = self._recv("starting", watch=False)
        if kind == "error":
            self._proc.join(10)
            raise EngineError(f"the {spec.kind} engine could not start: {rest[0]}")
        self.info, self._eot, self._prefix, limits = rest
        self._max_length, self._loglikelihood_limit, self._rolling_window = limits

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def usable(self) -> bool:
        return not self._broken and self._proc.is_alive()

    def why_unusable(self) -> str:
        """What happened to an engine that is no longer usable, in a few words."""
        if self.failure:
            return self.failure
        if not self._proc.is_alive():
            return f"its process {describe_exit(self._proc.exitcode)}"
        return "a call to it was cut short"

    def _recv(self, doing: str, watch: bool = True):
        if watch and self.stall_s is not None and not self._conn.poll(self.stall_s):
            self._broken = True
            self._proc.kill()
            self._proc.join(10)
            self.failure = (
                f"the {self.spec.kind} engine made no progress for {self.stall_s:g} s while "
                f"{doing}, so it was killed"
            )
            raise EngineError(
                f"{self.failure}; results received so far are kept and the next job starts a "
                "fresh engine (if the engine is only slow, give the worker a longer --lease)"
            )
        try:
            return self._conn.recv()
        except (EOFError, ConnectionResetError):
            self._broken = True
            self._proc.join(10)
            self.failure = f"its process {describe_exit(self._proc.exitcode)} while {doing}"
            advice = (
                "; look above for its own messages"
                if doing == "starting"
                else "; results received so far are kept: run the same command again to resume"
            )
            raise EngineError(
                f"the {self.spec.kind} engine process {describe_exit(self._proc.exitcode)} while "
                f"{doing}{advice}"
            ) from None

    def _send(self, command: str, payload, doing: str) -> None:
        try:
            self._conn.send((command, payload))
        except (BrokenPipeError, OSError):
            self._recv(doing, watch=False)  # the child is gone: raises with its fate

    def _call(self, command: str, payload, doing: str):
        self._send(command, payload, doing)
        while True:
            kind, value = self._recv(doing)
            if kind == "tick":
                continue
            if kind == "refused":
                raise SwapRefused(value)
            if kind == "error":
                raise EngineError(f"the {self.spec.kind} engine failed while {doing}: {value}")
            return value

    def generate(self, requests, on_done=None):
        results = [None] * len(requests)
        doing = f"generating {len(requests)} requests"
        self._send("generate", list(requests), doing)
        self._broken = True  # until the child says the whole batch is done
        while True:
            kind, value = self._recv(doing)
            if kind == "item":
                i, completions = value
                results[i] = completions
                if on_done:
                    on_done(i, completions)
            elif kind == "ok":
                self._broken = False
                return results
            else:
                raise EngineError(f"the {self.spec.kind} engine failed while generating: {value}")

    def loglikelihood_tokens(self, pairs):
        return self._call("loglikelihood_tokens", list(pairs), f"scoring {len(pairs)} pairs")

    def tokenize(self, texts, add_special_tokens=True):
        return self._call("tokenize", (list(texts), add_special_tokens), "tokenizing")

    def swap_weights(self, model_dir: str) -> None:
        self.info = self._call("swap_weights", model_dir, f"loading the weights of {model_dir}")

    def swap_lora(self, lora_dir: str, lora_name: str) -> None:
        self.info = self._call("swap_lora", (lora_dir, lora_name), f"loading LoRA {lora_dir}")

    def reset_cache(self) -> None:
        self._call("reset_cache", None, "resetting its cache")

    def redirect_output(self, path: str) -> None:
        """The child's stdout and stderr go to ``path`` from now on (the current job's log)."""
        self._call("redirect", path, "redirecting its output")

    @property
    def tokenizer(self):
        """Decoding happens here, in the parent: a local tokenizer, loaded on first use."""
        if not hasattr(self, "_tokenizer"):
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.spec.model_dir)
        return self._tokenizer

    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def prefix_token_id(self) -> int:
        return self._prefix

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def loglikelihood_limit(self) -> int:
        return self._loglikelihood_limit

    @property
    def rolling_window(self) -> int:
        return self._rolling_window

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("close", None))
            self._proc.join(60)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()
