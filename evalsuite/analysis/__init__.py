"""What a checkpoint's updates look like: spectra per module (``analyze``) and, for high-rank
updates, how well LoRA and RaSA structures can reconstruct them (``reconstruct``).

Nothing is imported here: the CLI mounts ``analysis.cli`` in every ``evalsuite`` call,
including the service image, which has no torch.
"""
