"""A tiny Llama with a real byte-level BPE tokenizer, built locally in a second.

Head size 32 because vLLM's CPU attention needs head_dim >= 32. The tokenizer is trained on
Python's own standard-library sources plus a few math lines, so code and math prompts
tokenize into plausible pieces without any download.
"""

from __future__ import annotations

import json
import string
import textwrap
from pathlib import Path

import torch

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _corpus() -> list[str]:
    lines: list[str] = []
    for module in (json, string, textwrap):
        lines += Path(module.__file__).read_text().splitlines()
    lines += [f"The answer is: {i * 7 % 97}." for i in range(200)]
    lines += [f"\\frac{{{i}}}{{{i + 1}}} + \\sqrt{{{i}}} = x^{{{i % 5}}}" for i in range(100)]
    return [ln for ln in lines if ln.strip()]


def build_tokenizer(out_dir: Path, vocab_size: int = 1000):
    """Train a byte-level BPE and save it as a PreTrainedTokenizerFast in ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_llama(
    out_dir: str | Path,
    num_layers: int = 3,
    hidden: int = 64,
    intermediate: int = 128,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a random tiny LlamaForCausalLM + tokenizer to ``out_dir`` (safetensors)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=num_layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.1,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out_dir)
    return out_dir
