"""Write adapter checkpoints in their training layouts, from tensors, without PEFT.

``write_rasa`` follows the RaSA reference layout (key names, shapes, ``rasa_mixing`` D),
``write_mora`` the RaSA repo's PEFT fork (``use_mora``, one square matrix saved as both
``lora_A`` and ``lora_B``), ``write_lora`` PEFT's LoRA. ``trainer_dir`` makes the
``run/checkpoint-<step>/trainer_state.json`` layout a HF Trainer leaves behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from evalsuite.adapters.base import PEFT_PREFIX
from evalsuite.adapters.model_files import read_model_weights
from evalsuite.adapters.mora import mora_size
from evalsuite.adapters.rasa import shared_key
from evalsuite.adapters.safetensors_io import save_tensors
from evalsuite.testing.tiny_model import TARGET_MODULES as TARGETS


def trainer_dir(run_dir: Path, step: int, epoch: float) -> Path:
    """``run_dir/checkpoint-<step>/`` with a trainer_state.json naming its epoch."""
    path = Path(run_dir) / f"checkpoint-{step}"
    path.mkdir(parents=True, exist_ok=True)
    state = {"epoch": epoch, "global_step": step, "log_history": [], "best_metric": None}
    (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
    return path


def target_shapes(base_dir: Path, targets: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """module name -> (out, in) for every Linear of the base whose last name part is a target."""
    weights = read_model_weights(Path(base_dir))
    shapes = {}
    for entries in weights.entries.values():
        for name, e in entries.items():
            module = name.removesuffix(".weight")
            if name.endswith(".weight") and module.rsplit(".", 1)[-1] in targets:
                shapes[module] = (e.shape[0], e.shape[1])
    return dict(sorted(shapes.items()))


def _write(out_dir: Path, config: dict, tensors: dict[str, torch.Tensor], dtype) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(
        out_dir / "adapter_model.safetensors", {k: v.to(dtype) for k, v in tensors.items()}
    )
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


def _common(base_dir: Path, targets) -> dict:
    # absolute, as PEFT resolves it from the loader's working directory, not the adapter's:
    # 'evalsuite make-example' (default out: ./example) wrote 'example/base', loadable only
    # from the directory it was made in
    return {
        "base_model_name_or_path": str(Path(base_dir).resolve()),
        "task_type": "CAUSAL_LM",
        "target_modules": list(targets),
        "inference_mode": True,
    }


def write_lora(
    out_dir: Path,
    base_dir: Path,
    targets,
    r: int = 8,
    alpha: float = 16,
    rslora: bool = False,
    seed: int = 0,
    std: float = 0.05,
    dtype=torch.float32,
) -> Path:
    """A PEFT LoRA (or rsLoRA) with random non-zero A and B."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (out_f, in_f) in target_shapes(base_dir, tuple(targets)).items():
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = torch.randn(r, in_f, generator=g) * std
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = torch.randn(out_f, r, generator=g) * std
    config = {
        **_common(base_dir, targets),
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": alpha,
        "use_rslora": rslora,
        "use_dora": False,
        "lora_dropout": 0.0,
        "bias": "none",
    }
    return _write(Path(out_dir), config, tensors, dtype)


def write_rasa(
    out_dir: Path,
    base_dir: Path,
    targets,
    r: int = 8,
    k: int = 1,
    alpha: float = 16,
    seed: int = 0,
    std: float = 0.05,
    dtype=torch.float32,
) -> Path:
    """A RaSA adapter in the reference layout with trained-looking, non-uniform D vectors."""
    g = torch.Generator().manual_seed(seed)
    shapes = target_shapes(base_dir, tuple(targets))
    by_type: dict[str, list[str]] = {}
    for module in shapes:
        by_type.setdefault(module.split("layers.", 1)[1].split(".", 1)[1], []).append(module)
    tensors = {}
    for mtype, modules in by_type.items():
        n_layers = len(modules)
        out_f, in_f = shapes[modules[0]]
        tensors[shared_key("A", mtype)] = torch.randn(n_layers * k, in_f, generator=g) * std
        tensors[shared_key("B", mtype)] = torch.randn(out_f, n_layers * k, generator=g) * std
        for module in modules:
            own = r - k
            tensors[f"{PEFT_PREFIX}{module}.rasa_A.weight"] = (
                torch.randn(own, in_f, generator=g) * std
            )
            tensors[f"{PEFT_PREFIX}{module}.rasa_B.weight"] = (
                torch.randn(out_f, own, generator=g) * std
            )
            # initial values 0.5*alpha/(r-k) and 0.5*alpha/(L*k), then "trained" apart
            d_own = torch.full((own,), 0.5 * alpha / max(own, 1))
            d_shared = torch.full((n_layers * k,), 0.5 * alpha / (n_layers * k))
            d = torch.cat([d_own, d_shared]) * (
                1 + 0.5 * torch.randn(own + n_layers * k, generator=g)
            )
            tensors[f"{PEFT_PREFIX}{module}.rasa_mixing.weight"] = d
    config = {
        **_common(base_dir, targets),
        "peft_type": "RASA",
        "r": r,
        "rasa_k": k,
        "rasa_alpha": alpha,
        "rasa_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
    }
    return _write(Path(out_dir), config, tensors, dtype)


def write_mora(
    out_dir: Path,
    base_dir: Path,
    targets,
    r: int = 8,
    mora_type: int = 6,
    seed: int = 0,
    std: float = 0.05,
    dtype=torch.float32,
) -> Path:
    """A MoRA adapter as the RaSA repo's PEFT fork saves it (lora_A and lora_B: one matrix)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (out_f, in_f) in target_shapes(base_dir, tuple(targets)).items():
        n = mora_size(in_f, out_f, r, mora_type)
        m = torch.randn(n, n, generator=g) * std
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = m
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = m.clone()
    config = {
        **_common(base_dir, targets),
        "peft_type": "LORA",
        "r": r,
        "lora_alpha": 8,
        "use_mora": True,
        "mora_type": mora_type,
        "use_rslora": False,
        "use_dora": False,
        "lora_dropout": 0.0,
        "bias": "none",
    }
    return _write(Path(out_dir), config, tensors, dtype)


EXAMPLE_TASKS = Path(__file__).parent / "example_tasks"

WRITERS = {
    "lora": lambda out, base, seed, std: write_lora(
        out, base, TARGETS, r=8, alpha=16, seed=seed, std=std
    ),
    "rslora": lambda out, base, seed, std: write_lora(
        out, base, TARGETS, r=8, alpha=16, rslora=True, seed=seed, std=std
    ),
    "rasa": lambda out, base, seed, std: write_rasa(
        out, base, TARGETS, r=8, k=1, alpha=16, seed=seed, std=std
    ),
    "mora": lambda out, base, seed, std: write_mora(out, base, TARGETS, r=8, seed=seed, std=std),
}


def write_example_runs(
    root: Path,
    base_dir: Path,
    methods=("lora", "rslora", "rasa", "mora"),
    epochs: int = 3,
    steps_per_epoch: int = 10,
) -> dict[str, list[Path]]:
    """``root/run-<method>/checkpoint-<step>/`` for each epoch, like a Trainer with
    save_strategy=epoch; later epochs drift further from the base, as training does."""
    runs: dict[str, list[Path]] = {}
    for i, method in enumerate(methods):
        runs[method] = []
        for epoch in range(1, epochs + 1):
            ckpt = trainer_dir(root / f"run-{method}", epoch * steps_per_epoch, float(epoch))
            WRITERS[method](ckpt, base_dir, 100 * i + epoch, 0.02 * epoch)
            runs[method].append(ckpt)
    return runs
