"""Read adapter checkpoints, merge them into a base exactly, export them as plain LoRA.

adapter = load("run/checkpoint-500")        # kind, r, k, trainable_params, epoch, delta(...)
merge("base/", "run/checkpoint-500", "merged/")
export_lora("run/checkpoint-500", "lora/", pad_to=64)
"""

from evalsuite.adapters.base import Adapter, LoraFactors
from evalsuite.adapters.errors import AdapterError
from evalsuite.adapters.export import export_lora
from evalsuite.adapters.full import FullCheckpoint
from evalsuite.adapters.loading import Checkpoint, adapter_from_state, load
from evalsuite.adapters.merge import merge

__all__ = [
    "Adapter",
    "AdapterError",
    "Checkpoint",
    "FullCheckpoint",
    "LoraFactors",
    "adapter_from_state",
    "export_lora",
    "load",
    "merge",
]
