"""The base model as epoch 0 of a run: its scores before any training, stored like a checkpoint.

The forgetting view needs the base's own per-document answers ("items the base got right and
the checkpoint lost"), so a run may register its base model as a checkpoint of epoch 0
(``evalsuite submit --base-as-epoch-0``). Such a checkpoint's ``uri`` is ``BASE_URI`` (the
worker then evaluates the run's base with no adapter) and its ``sha256`` the base's
fingerprint (config and tensor headers, as ``results.json`` records it).

Epoch 0 is not a fine-tuned result: BEST and LAST (the leaderboard, the paper's tables, the
gate's and compare's ``RUN@best`` / ``RUN@last``) take only epochs after it, while curves and
``RUN@0`` include it.
"""

from __future__ import annotations

BASE_EPOCH = 0.0
BASE_URI = "evalsuite:base"  # the checkpoint uri that means "the run's base, no adapter"


def is_trained(epoch: float | None) -> bool:
    """A checkpoint that may be BEST or LAST: any epoch after the base's."""
    return float(epoch or 0.0) > BASE_EPOCH
