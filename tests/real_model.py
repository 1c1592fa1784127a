"""The real base model the real-model checks run on (SmolLM2-135M-Instruct), found once.

``.ci/setup`` fetches it into the user's cache; the session fixture ``smollm2`` returns that
directory, fetching it there first if it is missing. The location is computed when this
module is imported, before conftest points XDG_CACHE_HOME at a temporary directory for the
tests' own caches. A model that cannot be had skips, which CI turns into a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.settings import Settings

NAME = "smollm2-135m-instruct"
MODEL_DIR: Path = Settings.from_env().cache_root / "models" / NAME


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The fetched model's directory (bf16 safetensors, tokenizer, ChatML template)."""
    from evalsuite.errors import EvalsuiteError
    from evalsuite.models import ensure_model

    try:
        return ensure_model(NAME, MODEL_DIR)
    except EvalsuiteError as e:
        pytest.skip(f"the real model {NAME} is not in {MODEL_DIR} and could not be fetched: {e}")
