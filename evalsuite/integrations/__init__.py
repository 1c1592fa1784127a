"""The training side: register checkpoints while a run trains, and log scores to trackers.

- ``transformers.EvalsuiteCallback``: a ``TrainerCallback`` that registers every saved
  checkpoint through a background sender (``sender``) and its on-disk spool (``spool``);
- ``watch``: ``evalsuite watch RUN_DIR`` for training code that cannot be changed;
- ``trackers``: a finished job's metrics into MLflow (``mlflow_tracker``) and Weights &
  Biases (``wandb_tracker``), from the worker or ``evalsuite export``.

Nothing here is imported by the rest of evalsuite at import time: MLflow, W&B and
transformers are loaded only by the module that needs them.
"""
