"""Evaluating one checkpoint: materialise it (merge or LoRA export), run its tasks on an
engine with resumable answers, write the results directory (``runner``); ``summary`` and
``progress`` are what a person sees while and after it runs."""
