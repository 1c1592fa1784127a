"""The results directory's format, declared once: ``results.json`` and ``samples_<task>.jsonl``.

The runner writes ``results.json`` through :class:`ResultsFile`; the API takes it and the
samples rows (:class:`SampleRow`) as the body of ``POST /v1/jobs/{id}/complete``, so a
malformed upload is a 422 that names the field; the store and the gate read the validated
models, not dicts. docs/results.md is the field table (tests/test_results_schema.py keeps it
in step with these models).

Reading then dumping with ``exclude_unset=True`` gives back what was read, key for key and
value for value. That matters because a task's ``config`` is hashed as it stands
(:func:`evalsuite.comparable.comparability_hash`): so numbers the task YAML may give either
way keep their JSON type (:data:`Number`), and keys a file leaves out stay out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from evalsuite.tasks.spec import TASK_KINDS

INT32 = 2**31 - 1
INT64 = 2**63 - 1
NO_NUL = r"^[^\x00]*$"

# task, metric and aggregate names: what the store's name columns hold
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
Count = Annotated[int, Field(ge=0, le=INT64)]
# an int stays an int: ``temperature: 0`` in a task YAML is written as 0, and hashed as 0
Number = int | float
# how the model was loaded: merged into the base, a served LoRA, a full fine-tune, the base
Materialization = Literal["merged", "lora", "full", "base"]
# how generated code was confined: the bubblewrap jail, or the audit-hook fallback
SANDBOX_MODES = ("namespaces", "basic")


class _Closed(BaseModel):
    """A record the runner writes whole: an unknown key is a mistake, not an extension."""

    model_config = ConfigDict(extra="forbid")


class Metric(_Closed):
    value: float = Field(description="the metric; NaN when no document was scored (n = 0)")
    stderr: float | None = Field(
        description="standard error of the mean; null where the metric has none (pass@k)"
    )
    n: Count = Field(description="documents (or samples) the value is computed over")


class Aggregate(_Closed):
    value: float = Field(description="plain mean of the parts")
    metrics: dict[Name, Name] = Field(description="task -> the metric of it that is averaged")
    parts: dict[Name, float] = Field(description="task -> that metric's value")
    partial: bool = Field(description="some part came from a --limit run")


class DataConfig(_Closed):
    file: str | None = Field(None, description="data file beside the task YAML")
    local: str | None = Field(None, description="data file under --data-dir")
    hf: dict[str, Any] | None = Field(None, description="Hugging Face dataset {path, name, split}")
    id_field: str | None = Field(None, description="document field used as doc_id")
    loader: str | None = Field(None, description="lm_eval tasks: a local document loader")
    process: str | None = Field(None, description="derived document fields: a processor name")


class SamplingConfig(_Closed):
    n: int = Field(description="samples per prompt")
    temperature: Number
    top_p: Number
    top_k: int = Field(description="-1: no top-k cut")
    seed: int | None
    max_tokens: int = Field(description="generation budget per sample")
    max_total_tokens: int | None = Field(description="cap on prompt + generation tokens")


class LmEvalConfig(_Closed):
    task: str = Field(description="lm-eval's task name")
    yaml: str = Field(description="lm-eval's task file, under lm_eval/tasks")
    metric: str = Field(description="the lm-eval metric that is each sample's verdict")
    num_fewshot: int


class TaskConfig(_Closed):
    """The task as it ran: ``TaskSpec.config()`` plus what the data and prompt were."""

    name: Name
    kind: Literal[TASK_KINDS]  # type: ignore[valid-type]
    source: str = Field(description="the task YAML file")
    data: DataConfig
    prompt_file: str | None = None
    prompt_template: str | None = None
    description: str = ""
    sampling: SamplingConfig
    stop: list[str] = Field(default_factory=list, description="stop strings")
    scorer: str | None = Field(None, description="generate tasks: the scorer's name")
    scorer_args: dict[str, Any] = Field(default_factory=dict)
    choices_field: str | None = Field(None, description="multiple_choice: the choices' field")
    target_field: str | None = Field(None, description="multiple_choice: the answer's field")
    choice_prefix: str = Field(" ", description="multiple_choice: text before each choice")
    lm_eval: LmEvalConfig | None = Field(None, description="lm_eval tasks: lm-eval's own task")
    data_sha256: str = Field(description="sha256 of the documents evaluated")
    data_origin: str = Field(description="where the documents were read from")
    prompt_sha256: str = Field(description="sha256 of the prompt template (or lm-eval's task)")
    limit: int | None = Field(None, description="--limit: only the first N documents")


class SandboxRecord(_Closed):
    """How a task's generated programs were confined (HumanEval+): provenance, not part of
    the comparability hash (a correct program passes in either mode; a hostile one is what
    differs: basic mode lets it read the host's files)."""

    isolation: Literal[SANDBOX_MODES] = Field(  # type: ignore[valid-type]
        description="namespaces: the bubblewrap jail; basic: the audit-hook fallback, used "
        "only with --allow-basic-sandbox"
    )
    why_not: str | None = Field(None, description="basic: why the jail could not start")
    basic_allowed: bool = Field(description="the run allowed basic mode (--allow-basic-sandbox)")
    info: dict[str, Any] = Field(
        default_factory=dict, description="the sandbox's own report (Sandbox.info)"
    )


class TaskResult(_Closed):
    metrics: dict[Name, Metric] = Field(description="metric name -> value, stderr, n")
    partial: bool = Field(description="fewer documents than the task has (--limit)")
    n_docs: Count = Field(description="documents evaluated")
    n_docs_total: Count = Field(description="documents the task has")
    config: TaskConfig
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per phase")
    engine_failures: Count = Field(
        0,
        description="generate tasks: samples the engine ended without an answer (abort, "
        "error), counted as failures and never scored as text",
    )
    cut_requests: Count = Field(
        0,
        description="loglikelihood tasks: requests longer than the engine's limit, scored "
        "without the start of their context (lm-eval's rule for the engine)",
    )
    sandbox: SandboxRecord | None = Field(
        None, description="tasks that run generated code: the sandbox it ran in"
    )


class CheckpointRecord(_Closed):
    kind: str = Field(description="base, full, or the adapter's kind (lora, rasa, vera, ...)")
    path: str
    sha256: str = Field(
        description="content hash of the checkpoint's files (for kind base: of the base's "
        "config and tensor headers)"
    )
    epoch: float | None = Field(None, description="from trainer_state.json; null for the base")
    step: int | None = Field(None, description="from trainer_state.json; null for the base")


# how a checkpoint got its engine: a fresh one, its weights (or LoRA) loaded into a running
# one, or the running one already held them (another suite's job on the same checkpoint)
ENGINE_USES = ("started", "swapped", "reused")


class EngineLifecycle(_Closed):
    """Which engine served a checkpoint and how it got the weights: provenance only (two
    scores stay comparable whether their engines were fresh or swapped)."""

    how: Literal[ENGINE_USES] = Field(  # type: ignore[valid-type]
        description="started: a fresh engine; swapped: the checkpoint's weights (or LoRA) were "
        "loaded into a running engine; reused: the running engine already held them"
    )
    engine_id: str = Field(description="names one engine's life; equal ids = the same engine")
    started: str = Field(description="when that engine started (ISO 8601, UTC)")
    checkpoint_index: Count = Field(description="1 for the engine's first checkpoint, then 2, ...")
    note: str | None = Field(None, description="why a running engine was not reused")


class EngineRecord(_Closed):
    """``EngineInfo`` of the engine that ran, or its name and a note when none had to start."""

    name: str = Field(description="vllm or hf")
    version: str | None = Field(None, description="vLLM's or transformers' version")
    model: str | None = Field(None, description="the model directory it loaded")
    dtype: str | None = None
    lora: str | None = Field(None, description="the served LoRA's name (materialization lora)")
    settings: dict[str, Any] = Field(default_factory=dict, description="engine settings")
    platform: str | None = Field(
        None,
        description="where the engine computed: cpu, cuda, rocm...; absent in results written "
        "before it was recorded, which ran on the CPU. Part of comparability",
    )
    note: str | None = Field(
        None, description="why no engine started (every answer came from the resume cache)"
    )
    lifecycle: EngineLifecycle | None = Field(
        None, description="which engine served this checkpoint (absent: none started)"
    )


class ModelRecord(_Closed):
    materialization: Materialization
    model_dir: str = Field(description="what the engine loaded")
    dtype: str
    lora_dir: str | None = Field(None, description="materialization lora: the exported LoRA")
    lora_name: str | None = None
    engine: EngineRecord


class ModuleTypeSummary(_Closed):
    """One module type's update across its layers (``evalsuite adapter analyze``'s ``by_type``,
    less what is only useful per layer)."""

    layers: Count = Field(description="modules of this type (one per layer)")
    frobenius: float = Field(description="Frobenius norm of all its layers' updates together")
    mean_frobenius: float = Field(description="mean over layers of each update's Frobenius norm")
    max_frobenius: float = Field(description="the largest layer's Frobenius norm")
    mean_spectral_entropy_rank: float = Field(
        description="mean over layers of exp(entropy of the normalised singular values)"
    )
    mean_energy_rank_90: float = Field(
        description="mean over layers of the fewest singular values holding 90% of the energy"
    )
    mean_shared_fraction: float | None = Field(
        None, description="RaSA: mean share of the squared D weights on the shared pool"
    )


class AdapterAnalysis(_Closed):
    """The checkpoint's update summarised per module type, computed from its factors while
    the checkpoint is materialised; a kind that would need dense updates, or an analysis
    that failed, leaves ``by_type`` empty and says why in ``note`` (it never fails a job)."""

    kind: str = Field(description="the checkpoint's kind (lora, rasa, full, ...)")
    reported: str | None = Field(None, description="what the numbers describe, and how")
    by_type: dict[Name, ModuleTypeSummary] = Field(
        default_factory=dict, description="module type -> its summary over layers"
    )
    note: str | None = Field(None, description="why there is no summary (skipped or failed)")


class ResultsFile(_Closed):
    """``results.json``: one checkpoint's scores on some tasks and everything that made them."""

    partial: bool = Field(description="some task ran on fewer documents than it has")
    created: datetime = Field(description="when the run ended (ISO 8601, UTC)")
    checkpoint: CheckpointRecord
    base: str = Field(description="the base model directory")
    model: ModelRecord
    tasks: dict[Name, TaskResult] = Field(description="task name -> its result")
    aggregates: dict[Name, Aggregate] = Field(
        default_factory=dict, description="suite aggregates whose tasks all ran"
    )
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per phase")
    versions: dict[str, str] = Field(default_factory=dict, description="package -> version")
    adapter_analysis: AdapterAnalysis | None = Field(
        None, description="the adapter's update per module type; absent for the base"
    )

    @field_serializer("created")
    def _iso(self, created: datetime) -> str:
        # as the runner has always written it ("+00:00", not pydantic's "Z")
        return created.isoformat()


class SampleRow(BaseModel):
    """One line of ``samples_<task>.jsonl``: one sample of one document.

    A task kind's scorer may add its own fields (they are kept); the ones below are the
    runner's. ``details`` is the scorer's: exact_match ``{target}``; math ``{extracted, gold,
    paper, robust, status, subject, level}``; humaneval_plus ``{status, base_status,
    plus_status, failed_split, failed_input, seconds}``; multiple_choice ``{loglikelihoods,
    pred, pred_norm, target, acc_norm}``; lm_eval lm-eval's per-document fields.
    """

    model_config = ConfigDict(extra="allow")

    doc_id: Annotated[str, StringConstraints(pattern=NO_NUL)] = Field(
        description="the document's id (its id_field, else its position)"
    )
    prompt_sha256: str = Field(description="the task config's prompt_sha256")
    sample_index: Annotated[int, Field(ge=0, le=INT32)] = Field(
        description="which of the document's n samples"
    )
    verdict: bool | None = Field(description="correct or not; null where it could not be judged")
    completion: str | None = Field(description="the generated text; null for loglikelihood tasks")
    details: dict[str, Any] = Field(description="the scorer's findings (see above)")
    finish_reason: str | None = Field(
        None, description="generate tasks: stop, length, repetition; abort or error: a failure"
    )
    num_tokens: int | None = Field(None, description="generate tasks: tokens generated")
    score: float | None = Field(None, description="a graded score, where a scorer gives one")


# every model of the format, in the order docs/results.md describes them
MODELS: tuple[type[BaseModel], ...] = (
    ResultsFile,
    CheckpointRecord,
    ModelRecord,
    EngineRecord,
    EngineLifecycle,
    TaskResult,
    SandboxRecord,
    Metric,
    TaskConfig,
    DataConfig,
    SamplingConfig,
    LmEvalConfig,
    Aggregate,
    AdapterAnalysis,
    ModuleTypeSummary,
    SampleRow,
)


def problems(errors: list[Any], limit: int = 10) -> str:
    """pydantic's errors as one line: ``tasks.math.metrics.acc.value: Input should be ...``.

    The API's 422s, the gate and the worker all say it this way, naming the field's path.
    """
    shown = [
        f"{'.'.join(str(part) for part in e.get('loc', ())) or '(top level)'}: "
        f"{e.get('msg', 'invalid')}"
        for e in errors[:limit]
    ]
    more = len(errors) - limit
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")
