"""One engine kept alive across checkpoints: started once, then swapped from job to job.

A run's checkpoints share their base, so after the first one the engine only needs new
weights: the worker (and ``evalsuite eval`` over several checkpoints) asks its slot for an
engine per checkpoint, and the slot

- reuses the running engine when the request differs only in weights or served LoRA
  (``EngineSpec.reuse_key``): it swaps them in and drops the prefix cache, so answers are
  computed exactly as on a fresh engine;
- starts a fresh engine when there is none, when the running one is unusable (its process
  died, or a call was cut short), when the settings differ, or when the engine refuses the
  swap (another architecture or tokenizer: nothing was written into it, a note says why);
- with ``keep=False`` never reuses (the fresh-engine-per-job mode, kept for comparison).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from evalsuite.engines.base import EngineError, SwapRefused
from evalsuite.engines.process import EngineProcess
from evalsuite.engines.spec import EngineSpec


@dataclass(frozen=True)
class EngineUse:
    """How a checkpoint got its engine: provenance only, never part of comparability."""

    how: str  # one of results_schema.ENGINE_USES
    seconds: float  # the start, or the swap
    engine_id: str
    started: str  # when that engine started (ISO 8601, UTC)
    checkpoint_index: int  # 1 for the first checkpoint the engine served, then 2, 3, ...
    note: str | None = None  # why a running engine could not be reused

    def record(self) -> dict:
        return {
            "how": self.how,
            "engine_id": self.engine_id,
            "started": self.started,
            "checkpoint_index": self.checkpoint_index,
            "note": self.note,
        }


class EngineSlot:
    def __init__(
        self,
        keep: bool = True,
        stall_s: float | None = None,
        log: Callable[[str], None] = print,
    ):
        self.keep = keep
        self.stall_s = stall_s
        self.log = log
        self.engine: EngineProcess | None = None
        self._served = 0
        self._output: str | None = None

    def redirect_output(self, path: str | None) -> None:
        """Where the engine's own messages go (the current job's log), now and after a start."""
        self._output = path
        if path and self.engine is not None and self.engine.usable:
            with contextlib.suppress(EngineError):
                self.engine.redirect_output(path)

    def get(self, spec: EngineSpec) -> tuple[EngineProcess, EngineUse]:
        """An engine serving ``spec``'s model, and how it came to."""
        note = None
        engine = self.engine
        if engine is not None and self.keep and engine.usable:
            if engine.spec.reuse_key() == spec.reuse_key():
                started = time.perf_counter()
                try:
                    swapped = self._swap(engine, spec)
                except SwapRefused as e:
                    note = f"{e}; starting a fresh engine"
                except EngineError as e:
                    note = f"the swap failed ({e}); starting a fresh engine"
                else:
                    self._served += 1
                    how = "swapped" if swapped else "reused"
                    return engine, self._use(how, time.perf_counter() - started)
            else:
                note = "the engine settings differ from the running engine's; starting afresh"
        elif engine is not None and self.keep:
            note = f"the running engine is gone ({engine.why_unusable()}); starting afresh"
        if note:
            self.log(f"note: {note}")
        self.close()
        started = time.perf_counter()
        self.engine = EngineProcess(spec, stall_s=self.stall_s)
        self._served = 1
        if self._output:
            self.engine.redirect_output(self._output)
        return self.engine, self._use("started", time.perf_counter() - started, note)

    def _swap(self, engine: EngineProcess, spec: EngineSpec) -> bool:
        """New weights and LoRA into the running engine; True if anything was loaded."""
        swapped = False
        if spec.model_dir != engine.spec.model_dir:
            engine.swap_weights(spec.model_dir)
            swapped = True
        if spec.lora_dir is not None and spec.lora_name != engine.spec.lora_name:
            engine.swap_lora(spec.lora_dir, spec.lora_name or "adapter")
            swapped = True
        engine.reset_cache()
        engine.spec = spec
        return swapped

    def _use(self, how: str, seconds: float, note: str | None = None) -> EngineUse:
        assert self.engine is not None
        return EngineUse(
            how=how,
            seconds=seconds,
            engine_id=self.engine.engine_id,
            started=self.engine.started.isoformat(),
            checkpoint_index=self._served,
            note=note,
        )

    def release(self) -> None:
        """The end of one checkpoint: a kept engine stays for the next, else it goes."""
        if not self.keep:
            self.close()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
            self._served = 0
