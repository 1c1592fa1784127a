"""``EvalsuiteCallback``: every checkpoint a Hugging Face ``Trainer`` (or TRL's ``SFTTrainer``)
saves is registered with the results service, and the last one is marked final.

    trainer = Trainer(..., callbacks=[EvalsuiteCallback(run="rasa-r16", domain="code")])

Training never waits on the service: ``on_save`` writes a small spool entry in the output
directory and returns; a background sender (``evalsuite.integrations.sender``) hashes the
checkpoint and registers it, retrying with backoff while the service is away. At the end of
training it waits at most ``final_wait_s`` for the queue to drain; what is left stays in the
spool and is sent by the next start in the same output directory or by ``evalsuite watch``.
Only the main process of a distributed run (``state.is_world_process_zero``) does anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from evalsuite.integrations.sender import Sender
from evalsuite.integrations.spool import Entry, Spool

log = logging.getLogger("evalsuite.integrations")


class EvalsuiteCallback(TrainerCallback):
    """Register each saved checkpoint under ``run``, with ``suites`` (default: by domain).

    A new run is created from ``domain`` (code or math), ``method`` (default: the adapter's
    kind: lora, rslora, rasa, ...), ``base_model`` and ``base_model_path`` (default: the
    adapter config's ``base_model_name_or_path``); rank, alpha and trainable parameters come
    from the adapter. ``api`` and ``token`` default to ``$EVALSUITE_API_URL`` and
    ``$EVALSUITE_API_TOKEN``. ``limit`` evaluates the first N documents per task (partial).
    """

    def __init__(
        self,
        run: str,
        *,
        domain: str | None = None,
        method: str | None = None,
        base_model: str | None = None,
        base_model_path: str | None = None,
        suites: list[str] | None = None,
        limit: int | None = None,
        options: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        api: str | None = None,
        token: str | None = None,
        final_wait_s: float = 30.0,
        retry_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.run = run
        self.suites = suites
        self.options = {**(options or {}), **({"limit": limit} if limit is not None else {})}
        self.new_run = {
            "method": method,
            "domain": domain,
            "base_model": base_model,
            "base_model_path": base_model_path,
            "metadata": metadata or {},
        }
        self.api = api
        self.token = token
        self.final_wait_s = final_wait_s
        self.retry_s = retry_s
        self.sender: Sender | None = None
        self._closed: Sender | None = None  # the sender an ended train() closed
        self._last: Entry | None = None
        self._warned_limit = False

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._start(args)
        if args.save_total_limit and not self._warned_limit:
            self._warned_limit = True
            log.warning(
                "evalsuite: save_total_limit=%s deletes older checkpoints, maybe before a "
                "worker evaluates them (such a job fails: its files are gone or their sha256 "
                "changed); keep every checkpoint (save_total_limit=None) if each is to be "
                "scored",
                args.save_total_limit,
            )

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        sender = self._start(args)
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not path.is_dir():
            log.warning("evalsuite: on_save found no %s; nothing registered", path)
            return
        self._last = Entry(
            run=self.run,
            path=str(path.resolve()),
            epoch=state.epoch,
            step=state.global_step,
            suites=self.suites,
            options=self.options,
            new_run=self.new_run,
        )
        sender.add(self._last)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or self.sender is None:
            return
        if self._last is not None:
            self.sender.mark_final(self._last)
        self.sender.close(self.final_wait_s)
        self._closed = self.sender

    def _start(self, args: TrainingArguments) -> Sender:
        """The sender of this training (a new one after an earlier ``train()`` ended)."""
        if self.sender is not None and self._closed is not self.sender:
            return self.sender
        from evalsuite.client import ApiClient
        from evalsuite.settings import get_settings

        settings = get_settings()
        api = self.api or settings.client_api_url
        token = self.token or settings.api_token

        def client() -> ApiClient:
            return ApiClient(api, token=token, timeout=10.0)

        spool = Spool(Path(args.output_dir))
        self.sender = Sender(spool, client, retry_s=self.retry_s).start()
        return self.sender
