"""The background sender: registers spooled checkpoints with the service, off the training
thread, retrying with backoff while the service cannot be reached.

What training sees is ``add`` and ``mark_final``: each writes a spool entry and returns. One
daemon thread takes the entries in order, hashes each checkpoint (``checkpoint_facts``, the
facts ``evalsuite submit`` records), registers it and, for the last one, marks it final.
The service dedupes on (run, sha256), so sending an entry twice (a crash between the answer
and the entry's removal, or ``evalsuite watch`` replaying the spool while training still
runs) stores one checkpoint. A refused token stops the sending with one log line and keeps
the spool for later; an entry the service refuses for another reason (409, 422) is set
aside as ``*.rejected`` with its reason logged, and the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalsuite.client import ApiClient, ApiError
from evalsuite.errors import EvalsuiteError
from evalsuite.integrations.spool import Entry, Spool

log = logging.getLogger("evalsuite.integrations")

REFUSED = (401, 403)  # a token the service does not accept: no retry fixes it
METHOD_OF_KIND = {"full": "fft"}  # the run's method where it is not the adapter's kind


def prepare(entry: Entry) -> dict[str, Any]:
    """The checkpoint's facts, with the epoch and step filled in when trainer_state.json is
    missing: the trainer's own state if the entry has it, else the step from the directory
    name and the epoch from the checkpoint's place among the run's ``checkpoint-<step>``
    directories (one per epoch, as ``save_strategy="epoch"`` writes them); said in the log."""
    from evalsuite.adapters.base import run_checkpoints
    from evalsuite.worker.submit import checkpoint_facts

    path = Path(entry.path)
    facts = checkpoint_facts(path)
    if facts.get("epoch") is not None:
        return facts
    if entry.epoch is not None:
        facts["epoch"] = float(entry.epoch)
        facts["step"] = facts.get("step") if entry.step is None else entry.step
        where = "the trainer's state"
    else:
        siblings = run_checkpoints(path.parent) if path.parent.is_dir() else []
        position = siblings.index(path) + 1 if path in siblings else 1
        facts["epoch"] = float(position)
        where = f"its place ({position}) among the run's checkpoint-<step> directories"
    step = facts.get("step")
    log.warning(
        "%s has no trainer_state.json: registering it as epoch %g (from %s), step %s; if "
        "that is wrong, register it yourself with 'evalsuite submit %s --epoch E'",
        path,
        facts["epoch"],
        where,
        step if step is not None else "unknown (not in the directory name either)",
        path,
    )
    return facts


def deliver(client: ApiClient, entry: Entry) -> dict[str, Any]:
    """Register the entry's checkpoint (creating its run if needed) and mark it final if
    asked; the registration answer, with ``checkpoint.final`` as it is now."""
    from evalsuite.worker.submit import RunFields, submit_checkpoint

    assert entry.facts is not None
    facts = entry.facts
    new_run = {k: v for k, v in entry.new_run.items() if v is not None}
    # a new run's method and base model, unless given: the adapter's kind and its config's
    # base_model_name_or_path (which is where a worker on this machine finds the base too)
    new_run.setdefault("method", METHOD_OF_KIND.get(facts.get("kind"), facts.get("kind")))
    new_run.setdefault("base_model", facts.get("base_model"))
    new_run.setdefault("base_model_path", facts.get("base_model"))
    answer = submit_checkpoint(
        client,
        entry.run,
        Path(entry.path),
        final=entry.final,
        epoch=facts["epoch"],
        step=facts.get("step"),
        suites=entry.suites,
        options=entry.options,
        new_run=RunFields(**new_run),
        facts=facts,
    )
    if entry.final and not answer["checkpoint"]["final"]:
        answer["checkpoint"] = client.mark_final(answer["checkpoint"]["id"])
    return answer


class Sender:
    """Sends the entries of ``spool`` in a daemon thread; ``pending()`` is what is not yet
    accepted by the service, ``delivered`` the registration answers so far."""

    def __init__(
        self,
        spool: Spool,
        client: Callable[[], ApiClient],
        retry_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.spool = spool
        self._client_factory = client
        self._first_delay, self._max_delay = retry_s
        self._pending: list[Entry] = []
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self.delivered: list[dict[str, Any]] = []
        self.refused: str | None = None  # why sending stopped for good
        self._thread: threading.Thread | None = None

    def start(self, replay: bool = True) -> Sender:
        """Start the thread; with ``replay``, what an earlier process left in the spool first."""
        if replay:
            left = self.spool.entries()
            if left:
                log.info("%d checkpoint(s) left in %s from before: sending them", len(left),
                         self.spool.dir)  # fmt: skip
            for entry in left:
                self._queue(entry, write=False)
            for bad in self.spool.unreadable():
                log.warning("%s is not a spool entry this version reads; left alone", bad)
        self._thread = threading.Thread(target=self._run, name="evalsuite-sender", daemon=True)
        self._thread.start()
        return self

    def add(self, entry: Entry) -> None:
        """Spool ``entry`` and wake the thread; returns at once."""
        self._queue(entry, write=True)

    def mark_final(self, entry: Entry) -> None:
        """``entry``'s checkpoint is the run's last: sent (again) with ``final`` set."""
        entry.final = True
        self._queue(entry, write=True)

    def pending(self) -> list[Entry]:
        with self._cond:
            return list(self._pending)

    def close(self, timeout: float) -> list[Entry]:
        """Wait up to ``timeout`` s for the queue to drain; what is left stays in the spool."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._pending or self._busy) and self.refused is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    break
                self._cond.wait(min(left, 0.5))
            left_over = list(self._pending)
        if left_over and self.refused is None:  # a refused token was said once already
            log.warning(
                "%d checkpoint(s) not registered yet; they stay in %s and are sent by the next "
                "start of this training or by 'evalsuite watch %s --run %s'",
                len(left_over),
                self.spool.dir,
                self.spool.dir.parent,
                left_over[0].run,
            )
        return left_over

    def _queue(self, entry: Entry, write: bool) -> None:
        with self._cond:
            same = next((e for e in self._pending if e.path == entry.path), None)
            if same is not None:  # one entry per checkpoint: a later final joins it
                same.final = same.final or entry.final
                entry = same
            else:
                self._pending.append(entry)
            if write:
                self.spool.write(entry)
            self._cond.notify_all()

    def _run(self) -> None:
        client = self._client_factory()
        delay = self._first_delay
        try:
            while True:
                with self._cond:
                    while not self._pending:
                        if self._closing:
                            return
                        self._cond.wait(1.0)
                    entry = self._pending[0]
                    self._busy = True
                outcome = self._send(client, entry)
                with self._cond:
                    self._busy = False
                    if outcome in ("sent", "rejected"):
                        if entry in self._pending:
                            self._pending.remove(entry)
                        delay = self._first_delay
                    self._cond.notify_all()
                    if self.refused is not None:
                        return
                    if outcome == "retry":
                        self._cond.wait(delay)
                        delay = min(delay * 2, self._max_delay)
        finally:
            client.close()

    def _send(self, client: ApiClient, entry: Entry) -> str:
        """'sent', 'rejected', 'retry' (after a pause) or 'again' (at once: marked final
        while it was being sent); sets ``refused`` when the token is refused."""
        sent_final = entry.final
        try:
            if entry.facts is None:
                entry.facts = prepare(entry)
                self.spool.write(entry)
            answer = deliver(client, entry)
        except ApiError as e:
            if e.status in REFUSED:
                self.refused = str(e)
                log.error(
                    "evalsuite: the service refused the token (%s); uploads stopped, training "
                    "goes on. %d checkpoint(s) wait in %s: fix the token and run 'evalsuite "
                    "watch %s --run %s --token ...' to send them",
                    e.status, len(self._pending), self.spool.dir, self.spool.dir.parent,
                    entry.run,
                )  # fmt: skip
                return "retry"
            if e.status is None or e.status >= 500 or e.status == 429:
                log.info("evalsuite: %s not sent yet (%s); retrying", Path(entry.path).name, e)
                return "retry"
            log.error("evalsuite: %s refused by the service, set aside: %s", entry.path, e)
            self.spool.reject(entry)
            return "rejected"
        except (EvalsuiteError, OSError) as e:
            log.error("evalsuite: %s cannot be registered, set aside: %s", entry.path, e)
            self.spool.reject(entry)
            return "rejected"
        with self._cond:
            if entry.final and not sent_final:
                return "again"
            self.spool.remove(entry)
        ckpt = answer["checkpoint"]
        log.info(
            "evalsuite: %s registered as checkpoint %s of %s (epoch %g%s)",
            Path(entry.path).name, ckpt["id"], entry.run, ckpt["epoch"],
            ", final" if ckpt["final"] else "",
        )  # fmt: skip
        with self._cond:
            self.delivered.append(answer)
        return "sent"
