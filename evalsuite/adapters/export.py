"""Export a checkpoint as a plain PEFT LoRA directory, exactly, for vLLM's LoRA serving.

The scale is folded into the factors and ``lora_alpha`` equals the rank (scale 1), so the
directory means the same thing to PEFT and vLLM whatever their scaling conventions. RaSA
becomes rank r-k+L*k with D folded into A. Zero-padding to a rank the server accepts keeps
B @ A unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite import __version__
from evalsuite.adapters.base import PEFT_PREFIX
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.full import FullCheckpoint
from evalsuite.adapters.loading import Checkpoint, load
from evalsuite.adapters.merge import TORCH_NAMES, parse_dtype
from evalsuite.adapters.safetensors_io import DTYPES, save_tensors
from evalsuite.atomic import OutputExistsError, atomic_directory

# Ranks vLLM's LoRA kernels accept (max_lora_rank choices).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def resolve_pad_to(rank: int, pad_to: int | str | None) -> int:
    """The rank to write: the adapter's own, a given larger one, or vLLM's next ('auto')."""
    if pad_to is None:
        return rank
    if str(pad_to).lower() == "auto":
        for r in VLLM_LORA_RANKS:
            if r >= rank:
                return r
        raise AdapterError(
            f"rank {rank} is above vLLM's largest LoRA rank {VLLM_LORA_RANKS[-1]}; serve the "
            "merged model instead (evalsuite merge)"
        )
    try:
        target = int(pad_to)
    except ValueError:
        raise AdapterError(f"--pad-to must be a rank or 'auto', got {pad_to!r}") from None
    if target < rank:
        raise AdapterError(
            f"--pad-to {target} is below the adapter's exact rank {rank}; padding only adds "
            f"zero ranks (try --pad-to auto)"
        )
    return target


def export_lora(
    adapter: str | Path | Checkpoint,
    out_dir: str | Path,
    pad_to: int | str | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write ``adapter`` as a plain LoRA at ``out_dir`` (float32 by default: no rounding)."""
    ckpt = adapter if not isinstance(adapter, str | Path) else load(adapter)
    if isinstance(ckpt, FullCheckpoint):
        raise AdapterError(
            f"{ckpt.path}: a full fine-tune has no LoRA form; serve it directly or merge it"
        )
    factors = ckpt.as_lora()
    if factors is None:
        raise AdapterError(
            f"{ckpt.source}: a {ckpt.kind} adapter has no exact plain-LoRA form (only LoRA, "
            "rsLoRA and RaSA do); use `evalsuite merge` and serve the merged model"
        )
    exact_rank = factors.rank
    rank = resolve_pad_to(exact_rank, pad_to)
    factors = factors.padded(rank)
    torch_dtype = DTYPES[parse_dtype(dtype)]
    tensors = {}
    for module, (a, b) in factors.factors.items():
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = a.to(torch_dtype).contiguous()
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = b.to(torch_dtype).contiguous()
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": ckpt.base_model,
        "r": rank,
        "lora_alpha": rank,
        "target_modules": ckpt.target_modules,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    info = {
        "evalsuite_version": __version__,
        "source_kind": ckpt.kind,
        "source_sha256": ckpt.sha256() if ckpt.path else None,
        "source_path": str(ckpt.path) if ckpt.path else None,
        "exact_rank": exact_rank,
        "rank": rank,
        "dtype": TORCH_NAMES[parse_dtype(dtype)],
        "epoch": ckpt.trainer.epoch,
        "step": ckpt.trainer.step,
    }
    try:
        with atomic_directory(Path(out_dir), overwrite) as tmp:
            save_tensors(tmp / "adapter_model.safetensors", tensors)
            (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
            (tmp / "export_info.json").write_text(json.dumps(info, indent=2))
    except OutputExistsError as e:
        raise AdapterError(str(e)) from None
    return Path(out_dir)
