"""The one training helper: LoRA, rsLoRA or RaSA on a base model with HF ``Trainer``.

Checkpoints land as training leaves them and as evalsuite reads them: one per epoch
(``save_strategy="epoch"``) in ``run_dir/checkpoint-<step>/`` beside its
``trainer_state.json``; PEFT's layout for LoRA and rsLoRA (``use_rslora``), the RaSA
reference layout for RaSA. The loss is on the response only. A run counts as done only when
``training-done.json`` records the settings it was trained with: an interrupted run, or one
trained with other settings, is trained again from scratch, never reused half-way.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from evalsuite.training.rasa import RasaSettings, add_rasa, save_rasa

METHODS = ("lora", "rslora", "rasa")
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DONE_FILE = "training-done.json"


@dataclass(frozen=True)
class TrainSettings:
    """What a run is trained with; all of it is recorded with the run."""

    method: str
    r: int = 8
    alpha: float = 16.0
    rasa_k: int = 1  # RaSA: ranks per layer put in the shared pool
    epochs: int = 2
    learning_rate: float = 5e-4
    batch_size: int = 4
    max_length: int = 384  # tokens per example, prompt + response
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.method == "rasa" and not 0 < self.rasa_k < self.r:
            raise ValueError(f"RaSA needs 0 < rasa_k < r, got r={self.r}, rasa_k={self.rasa_k}")


def finetune(
    base: Path,
    run_dir: Path,
    examples: Sequence[tuple[str, str]],
    settings: TrainSettings,
    callbacks: Sequence[Any] = (),
    log_every: int = 5,
) -> list[Path]:
    """Train ``settings.method`` on ``(prompt, response)`` pairs; returns the epoch checkpoints.

    ``callbacks`` (``transformers.TrainerCallback``) go to the Trainer as given. A finished
    run with the same settings and examples is returned as it is, without training."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    run_dir = Path(run_dir)
    record = _record(base, examples, settings)
    if finished(run_dir, base, examples, settings) is not None:
        return checkpoints(run_dir)
    started = time.monotonic()
    if run_dir.exists():
        shutil.rmtree(run_dir)  # half-trained or trained otherwise: start again
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    rasa = None
    if settings.method == "rasa":
        rasa = RasaSettings(settings.r, settings.rasa_k, settings.alpha, TARGET_MODULES)
        add_rasa(model, rasa)
    else:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            target_modules=list(TARGET_MODULES),
            lora_dropout=0.0,
            use_rslora=settings.method == "rslora",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    steps = settings.epochs * -(-len(examples) // settings.batch_size)
    args = TrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=round(0.1 * steps),  # none in a run of a few steps: its first would be lost
        weight_decay=0.0,
        save_strategy="epoch",
        save_only_model=True,  # adapters only: no optimizer state per epoch
        logging_steps=log_every,
        report_to=[],
        seed=settings.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer_class = _rasa_trainer(rasa, Path(base)) if rasa is not None else Trainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=_tokenized(tokenizer, examples, settings.max_length),
        data_collator=_Collator(tokenizer.pad_token_id or tokenizer.eos_token_id),
        callbacks=list(callbacks),
    )
    trainer.train()
    found = checkpoints(run_dir)
    if len(found) != settings.epochs:
        raise RuntimeError(f"{run_dir}: expected {settings.epochs} checkpoints, found {found}")
    done = {"record": record, "train_s": round(time.monotonic() - started, 1)}
    (run_dir / DONE_FILE).write_text(json.dumps(done, indent=2) + "\n")
    return found


def finished(
    run_dir: Path, base: Path, examples: Sequence[tuple[str, str]], settings: TrainSettings
) -> dict[str, Any] | None:
    """The done record of a run trained to the end with these settings, else None."""
    done = Path(run_dir) / DONE_FILE
    if not done.is_file():
        return None
    found = json.loads(done.read_text())
    return found if found.get("record") == _record(base, examples, settings) else None


def _record(base: Path, examples: Sequence[tuple[str, str]], settings: TrainSettings) -> dict:
    return {
        "settings": asdict(settings),
        "base": str(Path(base).resolve()),
        "examples": len(examples),
        "examples_sha256": _examples_hash(examples),
    }


def checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoint-<step>`` directories in step order."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _examples_hash(examples: Sequence[tuple[str, str]]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(list(examples)).encode()).hexdigest()


def _tokenized(tokenizer, examples: Sequence[tuple[str, str]], max_length: int) -> list[dict]:
    """Prompt tokens as the engines encode the prompt, then the response and EOS; the labels
    mask the prompt (-100) so the loss is the response's alone."""
    rows = []
    for prompt, response in examples:
        prompt_ids = tokenizer(prompt)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + response_ids + [tokenizer.eos_token_id])[:max_length]
        labels = ([-100] * len(prompt_ids) + response_ids + [tokenizer.eos_token_id])[:max_length]
        if any(label != -100 for label in labels):
            rows.append({"input_ids": ids, "labels": labels})
    if not rows:
        raise ValueError(f"every example's prompt fills max_length={max_length} tokens")
    return rows


class _Collator:
    """Right-pads a batch; padding is masked out of attention and loss."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in batch)
        ids, labels, mask = [], [], []
        for row in batch:
            pad = width - len(row["input_ids"])
            ids.append(row["input_ids"] + [self.pad_id] * pad)
            labels.append(row["labels"] + [-100] * pad)
            mask.append([1] * len(row["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


def _rasa_trainer(rasa: RasaSettings, base: Path):
    """A Trainer whose checkpoints hold the RaSA adapter, not the whole model."""
    from transformers import Trainer

    class RasaTrainer(Trainer):
        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            save_rasa(self.model, Path(output_dir or self.args.output_dir), rasa, base)

    return RasaTrainer
