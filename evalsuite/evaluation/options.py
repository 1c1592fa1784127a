"""The evaluation options a queued job may set, and the choices they take.

A checkpoint's ``options`` (``POST /v1/runs/{run}/checkpoints``) travel to the worker as the
job's ``JobClaim.options`` and override the worker's own settings. They are checked against
:class:`JobOptions` twice: by the API when the checkpoint is registered (a 422 that names the
option and what it accepts, so a typo never reaches the queue) and by the worker before it
runs the job (a job stored before this check, or by another version, fails with the reason).
Each field is an :class:`~evalsuite.evaluation.runner.EvalOptions` field of the same name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalsuite.dtypes import DTYPE_ALIASES
from evalsuite.engines.spec import ENGINE_KINDS
from evalsuite.results_schema import INT32

# --materialize: merge the checkpoint into the base (cached), or serve it as a LoRA
MATERIALIZE_MODES = ("merged", "lora")

Positive = Annotated[int, Field(strict=True, ge=1, le=INT32)]
NonNegative = Annotated[int, Field(strict=True, ge=0, le=INT32)]


class JobOptions(BaseModel):
    """What a job may change about its evaluation; absent or null keeps the worker's setting."""

    model_config = ConfigDict(extra="forbid")

    limit: Positive | None = Field(
        None, description="evaluate the first N documents per task (scores marked partial)"
    )
    n_samples: Positive | None = Field(None, description="samples per prompt")
    max_new_tokens: Positive | None = Field(None, description="generation budget per sample")
    seed: NonNegative | None = Field(None, description="sampling seed")
    num_fewshot: NonNegative | None = Field(None, description="shots for lm-eval tasks")
    materialize: Literal[MATERIALIZE_MODES] | None = Field(  # type: ignore[valid-type]
        None, description="merged (cached merge) or lora (served adapter)"
    )
    dtype: Literal[tuple(DTYPE_ALIASES)] | None = Field(  # type: ignore[valid-type]
        None, description="model dtype (default: the base's own)"
    )
    engine: Literal[ENGINE_KINDS] | None = Field(  # type: ignore[valid-type]
        None, description="auto (vllm if installed), vllm or hf"
    )

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        """An unknown option is named with the ones there are (pydantic's own message for an
        extra key does not list them)."""
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown option(s) {unknown}; the options are {', '.join(cls.model_fields)}"
                )
        return data

    def overrides(self) -> dict[str, Any]:
        """The options that were given, as EvalOptions field -> value."""
        return self.model_dump(exclude_none=True)
