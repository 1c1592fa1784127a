"""An engine living in a child process for the length of one job.

vLLM does not reliably give GPU memory back inside a process, so the model lives in a child
that exits with the job. The child streams each finished request back as it ends, and a child
that dies (out of memory, killed) becomes an ``EngineError`` naming the signal, with every
result already received kept by the caller.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import traceback

from evalsuite.engines.base import Engine, EngineError
from evalsuite.engines.spec import EngineSpec


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies, so no engine outlives its job."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn, spec: EngineSpec) -> None:
    _die_with_parent()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        engine = spec.build()
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(
        ("ready", engine.info, engine.eot_token_id, engine.prefix_token_id, engine.max_length)
    )
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
                conn.send(("ok", engine.loglikelihood_tokens(payload)))
            elif command == "tokenize":
                conn.send(("ok", engine.tokenize(*payload)))
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
    """Same interface as the engine it wraps; calls go over a pipe to the child."""

    def __init__(self, spec: EngineSpec):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, spec), name=f"evalsuite-{spec.kind}")
        self._proc.start()
        child.close()  # so a dead child reads as EOF here
        self.spec = spec
        kind, *rest = self._recv("starting")
        if kind == "error":
            self._proc.join(10)
            raise EngineError(f"the {spec.kind} engine could not start: {rest[0]}")
        self.info, self._eot, self._prefix, self._max_length = rest

    def _recv(self, doing: str):
        try:
            return self._conn.recv()
        except (EOFError, ConnectionResetError):
            self._proc.join(10)
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
            self._recv(doing)  # the child is gone: raises with its fate

    def _call(self, command: str, payload, doing: str):
        self._send(command, payload, doing)
        kind, value = self._recv(doing)
        if kind == "error":
            raise EngineError(f"the {self.spec.kind} engine failed while {doing}: {value}")
        return value

    def generate(self, requests, on_done=None):
        results = [None] * len(requests)
        self._send("generate", list(requests), f"generating {len(requests)} requests")
        while True:
            kind, value = self._recv(f"generating {len(requests)} requests")
            if kind == "item":
                i, completions = value
                results[i] = completions
                if on_done:
                    on_done(i, completions)
            elif kind == "ok":
                return results
            else:
                raise EngineError(f"the {self.spec.kind} engine failed while generating: {value}")

    def loglikelihood_tokens(self, pairs):
        return self._call("loglikelihood_tokens", list(pairs), f"scoring {len(pairs)} pairs")

    def tokenize(self, texts, add_special_tokens=True):
        return self._call("tokenize", (list(texts), add_special_tokens), "tokenizing")

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

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("close", None))
            self._proc.join(60)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()
