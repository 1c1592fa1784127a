"""EvalsuiteCallback inside real ``transformers.Trainer`` runs (PEFT LoRA on the tiny local
Llama, 3 epochs of 2 steps, a checkpoint per epoch) against the API under uvicorn on SQLite.

What each checkpoint should be registered as is read from what transformers itself wrote
(``trainer_state.json``) and from the PEFT config the test chose, not from evalsuite's code.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
from service_support import TOKEN, Server, make_database
from transformers import TrainerCallback, TrainerState, TrainingArguments

from evalsuite.client import ApiClient, ApiError
from evalsuite.integrations.spool import SPOOL_DIR
from evalsuite.integrations.transformers import EvalsuiteCallback
from evalsuite.store import migrate

EPOCHS = 3


@pytest.fixture
def server(tmp_path):
    url, drop = make_database("sqlite", tmp_path)
    migrate.upgrade(url)
    served = Server(url).start()
    yield served
    served.stop()
    drop()


def train(base: Path, out: Path, callbacks: list[TrainerCallback], **extra) -> None:
    """A real Trainer run: LoRA r=4 on q/v, 4 rows of 16 tokens, batch 2: 2 steps an epoch."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM, Trainer

    torch.manual_seed(0)
    model = get_peft_model(
        LlamaForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(3, 900, (4, 16))]
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=EPOCHS, per_device_train_batch_size=2,
        save_strategy="epoch", report_to=[], logging_strategy="no", use_cpu=True,
        disable_tqdm=True, learning_rate=1e-3, **extra,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=rows, callbacks=callbacks).train()


def expected(out: Path) -> list[tuple[float, int, str]]:
    """(epoch, step, uri) of every checkpoint, as transformers wrote them."""
    found = []
    for ckpt in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        state = json.loads((ckpt / "trainer_state.json").read_text())
        found.append((float(state["epoch"]), int(state["global_step"]), str(ckpt.resolve())))
    return found


def registered(api: ApiClient, run: str) -> list[tuple[float, int, str, bool]]:
    return [(c["epoch"], c["step"], c["uri"], c["final"]) for c in api.get_run(run)["checkpoints"]]


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll ``condition`` until it is truthy (the sender works in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def callback(server: Server, **kw) -> EvalsuiteCallback:
    kw.setdefault("token", TOKEN)
    return EvalsuiteCallback(
        "tiny-lora", domain="code", suites=["code"], limit=2, api=server.url,
        retry_s=(0.1, 0.5), **kw,
    )  # fmt: skip


def test_three_epochs_registered_last_final(server, tiny_base, tmp_path):
    cb = callback(server)
    out = tmp_path / "out"
    train(tiny_base, out, [cb])
    truth = expected(out)
    assert [(e, s) for e, s, _ in truth] == [(1.0, 2), (2.0, 4), (3.0, 6)]
    api = ApiClient(server.url)
    got = registered(api, "tiny-lora")
    assert got == [(e, s, uri, e == 3.0) for e, s, uri in truth]
    run = api.get_run("tiny-lora")
    assert (run["method"], run["r"], run["alpha"], run["domain"]) == ("lora", 4, 8.0, "code")
    assert run["base_model"] == str(tiny_base) and run["base_model_path"] == str(tiny_base)
    jobs = api.list_jobs(run="tiny-lora")
    assert sorted(j["epoch"] for j in jobs) == [1.0, 2.0, 3.0]
    assert {j["suite"] for j in jobs} == {"code"}
    assert not list((out / SPOOL_DIR).glob("*.json"))  # everything sent, nothing left


class StopApiAtFirstSave(TrainerCallback):
    """Stops the API before the first checkpoint is written, checks the callback's queue right
    after its ``on_save`` returned, and starts the API again after the second epoch."""

    def __init__(self, server: Server, evalsuite: EvalsuiteCallback) -> None:
        self.server, self.evalsuite = server, evalsuite
        self.seen_at_first_save: tuple[list[str], int] | None = None

    def on_epoch_end(self, args, state, control, **kw):
        if round(state.epoch) == 1:
            self.server.stop()
        elif round(state.epoch) == 2:
            self.server.start()

    def on_save(self, args, state, control, **kw):
        if self.seen_at_first_save is None:
            sender = self.evalsuite.sender
            pending = [Path(e.path).name for e in sender.pending()]
            self.seen_at_first_save = (pending, len(sender.delivered))


def test_api_down_at_first_save_then_back(server, tiny_base, tmp_path):
    cb = callback(server, final_wait_s=60)
    probe = StopApiAtFirstSave(server, cb)
    out = tmp_path / "out"
    train(tiny_base, out, [cb, probe])
    # on_save returned with checkpoint-2 still queued: nothing could have reached the API
    assert probe.seen_at_first_save == (["checkpoint-2"], 0)
    api = ApiClient(server.url)
    truth = expected(out)
    wait_for(lambda: len(registered(api, "tiny-lora")) == EPOCHS, "three checkpoints")
    assert registered(api, "tiny-lora") == [(e, s, u, e == 3.0) for e, s, u in truth]
    jobs_before = sorted(j["id"] for j in api.list_jobs(run="tiny-lora"))

    # the upload of checkpoint-2 retried by a later start (its spool entry written back, as if
    # the process had died between the service's answer and removing the entry): no duplicate
    from evalsuite.integrations.spool import Entry, Spool

    spool = Spool(out)
    again = Entry(run="tiny-lora", path=truth[0][2], new_run={"domain": "code"})
    spool.write(again)
    replay = callback(server)
    replay.on_train_begin(TrainingArguments(output_dir=str(out), report_to=[]), TrainerState(),
                          None)  # fmt: skip
    wait_for(lambda: replay.sender.delivered, "the replayed entry to be sent")
    replay.sender.close(30)
    assert registered(api, "tiny-lora") == [(e, s, u, e == 3.0) for e, s, u in truth]
    assert sorted(j["id"] for j in api.list_jobs(run="tiny-lora")) == jobs_before
    assert replay.sender.delivered[0]["checkpoint"]["uri"] == truth[0][2]


def test_not_world_process_zero_registers_nothing(server, peft_checkpoint, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(peft_checkpoint("lora"), out / "checkpoint-40")
    cb = callback(server)
    args = TrainingArguments(output_dir=str(out), report_to=[], save_total_limit=1)
    state = TrainerState(global_step=40, epoch=2.0, is_world_process_zero=False)
    for hook in (cb.on_train_begin, cb.on_save, cb.on_train_end):
        hook(args, state, None)
    assert cb.sender is None and not (out / SPOOL_DIR).exists()
    with pytest.raises(ApiError) as e:
        ApiClient(server.url).get_run("tiny-lora")
    assert e.value.status == 404


def test_refused_token_stops_uploads_once_training_goes_on(server, tiny_base, tmp_path, caplog):
    cb = callback(server, token="not-the-token")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="evalsuite.integrations"):
        train(tiny_base, out, [cb], save_total_limit=5)
    assert len(expected(out)) == EPOCHS  # training finished every epoch
    mine = [r for r in caplog.records if r.name == "evalsuite.integrations"]
    refused = [r for r in mine if "refused the token" in r.getMessage()]
    assert len(refused) == 1 and "401" in refused[0].getMessage()
    assert [r for r in mine if r.levelno >= logging.ERROR] == refused  # the one error line
    limit_warnings = [r for r in caplog.records if "save_total_limit" in r.getMessage()]
    assert len(limit_warnings) == 1
    with pytest.raises(ApiError):
        ApiClient(server.url).get_run("tiny-lora")
    # the checkpoints wait in the spool, the last one marked final
    left = sorted((out / SPOOL_DIR).glob("*.json"))
    entries = [json.loads(f.read_text()) for f in left]
    names = [Path(e["path"]).name for e in entries]
    assert names == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert [e["final"] for e in entries] == [False, False, True]


def test_a_rasa_run_registers_as_rasa(server, tiny_base, tmp_path):
    """RaSA trained by evalsuite.training (its reference layout, not PEFT's): each epoch's
    checkpoint is registered with the kind and rank its own config declares."""
    from evalsuite.training import TrainSettings, finetune

    examples = [
        ("Add two numbers.\n", "def add(a, b):\n    return a + b\n"),
        ("What is 2+2?\n", "The answer is 4."),
        ("Reverse s.\n", "return s[::-1]\n"),
    ]
    settings = TrainSettings(method="rasa", r=4, alpha=8, rasa_k=1, epochs=2,
                             learning_rate=5e-3, batch_size=2, max_length=64)  # fmt: skip
    cb = EvalsuiteCallback(
        "tiny-rasa", domain="math", suites=["math"], limit=2, api=server.url, token=TOKEN,
        retry_s=(0.1, 0.5), base_model_path=str(tiny_base),
    )  # fmt: skip
    out = tmp_path / "rasa"
    finetune(tiny_base, out, examples, settings, callbacks=[cb])
    truth = expected(out)
    assert [(e, s) for e, s, _ in truth] == [(1.0, 2), (2.0, 4)]
    api = ApiClient(server.url)
    assert registered(api, "tiny-rasa") == [(e, s, uri, e == 2.0) for e, s, uri in truth]
    run = api.get_run("tiny-rasa")
    declared = json.loads((out / "checkpoint-4" / "adapter_config.json").read_text())
    assert (run["method"], run["r"]) == ("rasa", declared["r"])
    assert {j["suite"] for j in api.list_jobs(run="tiny-rasa")} == {"math"}
