"""evalsuite: evaluate LoRA-family checkpoints as the RaSA paper does, store and compare them."""

__version__ = "0.1.0"
