"""Short fine-tunes of a base model (LoRA, rsLoRA, RaSA) for the demo and for one's own runs.

``finetune`` is the one training helper; ``datasets`` holds the small training sets that
ship with evalsuite (not evaluation sets). Needs PEFT for LoRA and rsLoRA (``pip install
peft``, in the ``dev`` extra).
"""

from evalsuite.training.finetune import METHODS, TrainSettings, checkpoints, finetune

__all__ = ["METHODS", "TrainSettings", "checkpoints", "finetune"]
