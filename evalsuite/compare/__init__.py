"""Two checkpoints item by item: the documents that flipped and the paired difference,
through the gate's own evidence and statistics (``flips.compare``)."""

from evalsuite.compare.flips import compare

__all__ = ["compare"]
