"""What a checkpoint's updates look like: spectra per module (``analyze``) and, for high-rank
updates, how well LoRA and RaSA structures can reconstruct them (``reconstruct``)."""

from evalsuite.analysis.analyze import analyze

__all__ = ["analyze"]
