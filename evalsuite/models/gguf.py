"""A GGUF file -> a plain transformers model directory (safetensors, tokenizer, chat template).

transformers dequantises GGUF weights when it loads them (``gguf_file=``, needs the ``gguf``
package), but refuses to ``save_pretrained`` a model it loaded that way. So the model is
rebuilt from the GGUF's config without its ``quantization_config`` and handed the dequantised
state dict; tied embeddings stay tied (one tensor, ``lm_head`` not written).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evalsuite.models.catalog import ModelError

Log = Callable[[str], None]


def gguf_architecture(path: Path) -> str:
    """``general.architecture`` from the GGUF's header (no tensor is read)."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
    except KeyError:
        raise ModelError(f"{path}: a GGUF file without general.architecture") from None
    except (ValueError, OSError) as e:
        raise ModelError(f"{path}: not a readable GGUF file ({e})") from None
    return bytes(field.parts[field.data[0]]).decode()


def supported_architectures() -> list[str]:
    """The GGUF architectures this transformers can dequantise into a model."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})


def convert_gguf(path: Path, out_dir: Path, dtype: str, log: Log = lambda _: None) -> None:
    """Write ``path``'s model to ``out_dir`` (which must exist) in ``dtype`` safetensors."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    arch = gguf_architecture(path)
    if arch not in supported_architectures():
        raise ModelError(
            f"{path.name}: GGUF architecture {arch!r} is not supported (transformers "
            f"dequantises {', '.join(supported_architectures())})"
        )
    folder, name = str(path.parent), path.name
    log(f"dequantising {name} ({arch})")
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    # a tied lm_head may be absent from the state dict; anything else must match exactly
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelError(
            f"{name}: the dequantised tensors do not fit a plain {type(plain).__name__} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    if config.tie_word_embeddings:
        plain.tie_weights()
    del quantised
    log(f"writing {dtype} safetensors")
    plain.to(getattr(torch, dtype)).save_pretrained(out_dir, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(out_dir)
