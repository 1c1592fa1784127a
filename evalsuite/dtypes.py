"""The dtype names evalsuite accepts (``--dtype``, a job's ``dtype`` option) and the
safetensors names they stand for.

Its own module, free of torch, so the API can check a job's ``dtype`` against the same names
the merge accepts without importing the model code.
"""

from __future__ import annotations

# what a user may write -> safetensors' dtype name
DTYPE_ALIASES = {
    "float32": "F32",
    "fp32": "F32",
    "bfloat16": "BF16",
    "bf16": "BF16",
    "float16": "F16",
    "fp16": "F16",
    "half": "F16",
}
# safetensors' dtype name -> the name torch and config.json use
TORCH_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}
