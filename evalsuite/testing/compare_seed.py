"""A run whose two epochs differ on known documents, stored through the real API: what the
dashboard's Compare page is tested on.

Epoch 1 (BEST on MATH) and epoch 2 (final, LAST) come from results directories in the
runner's format (``results_dirs``), so their samples reproduce the stored metrics and the
gate's pairing accepts them. MATH problem ``test/algebra/3.json`` is solved at epoch 1
(answer 7) and lost at epoch 2 (answer 8); HumanEval/1 passes 2 of 10 samples at epoch 1
and none at epoch 2. A second run, ``OTHER``, solves none of the MATH problems at epoch 1
(5 fewer than ``RUN``: significant under the gate's paired test) and exactly ``RUN``'s at
epoch 2 (no difference). MATH ``acc`` carries the stderr ``STDERR`` per epoch, for the bands.

``seed_forgetting`` adds ``FORGET``: the base model as epoch 0 and one checkpoint, scored on
HellaSwag and WinoGrande; the checkpoint loses ``FORGOTTEN`` (task -> documents).
"""

from __future__ import annotations

import json
from pathlib import Path

from evalsuite.client import ApiClient
from evalsuite.gate.results_dir import read_jsonl
from evalsuite.testing.results_dirs import (
    SyntheticTask,
    choice_task,
    code_task,
    math_task,
    write_results_dir,
)

RUN = "cmp-rasa-r8"
OTHER = "cmp-lora-r8"
STDERR = {1: 0.05, 2: 0.04}  # MATH acc's stored stderr per epoch (both runs)
FORGET = "forget-rasa-r8"
FORGOTTEN = {"hellaswag": ["1"], "winogrande": ["2"]}
_SOLVED = {  # epoch -> task -> right per document
    0: {"hellaswag": [True, True, False, True], "winogrande": [True, False, True]},
    1: {"hellaswag": [True, False, False, True], "winogrande": [True, False, False]},
}
_FORGETTING_METRIC = {"hellaswag": "acc_norm", "winogrande": "acc"}
LOST_MATH = "test/algebra/3.json"
LOST_CODE = "HumanEval/1"
ANSWERS = {
    1: "so x = 7 and the answer is $\\boxed{7}$",
    2: "so x = 8 and the answer is $\\boxed{8}$",
}
CODE = {1: "    return sorted(xs)[len(xs) // 2]\n", 2: "    return xs[0]\n"}


def _tasks(epoch: int, run: str = RUN):
    solved = [i % 2 == 0 or (i == 3 and epoch == 1) for i in range(8)]
    if run == OTHER and epoch == 1:
        solved = [False] * 8
    math = math_task(solved)
    for row in math.rows:
        if row["doc_id"] == LOST_MATH:
            row["completion"] = ANSWERS[epoch]
            row["details"] = {**row["details"], "extracted": str(6 + epoch), "gold": "7"}
    passes = [3, 2 if epoch == 1 else 0, 0, 4]
    code = code_task([[s < c for s in range(10)] for c in passes])
    for row in code.rows:
        if row["doc_id"] == LOST_CODE:
            row["completion"] = CODE[epoch]
            if not row["verdict"]:
                row["details"] = {
                    **row["details"],
                    "failed_split": "base",
                    "failed_input": "[[3, 1, 2]]",
                }
    return [code, math]


def seed_compare(api_url: str, token: str, root: Path) -> dict[int, int]:
    """Register ``RUN`` then ``OTHER``, epochs 1 and 2 each, and complete their jobs;
    ``RUN``'s epoch -> checkpoint id."""
    ids = {}
    with ApiClient(api_url, token=token) as api:
        for run, method in ((RUN, "rasa"), (OTHER, "lora")):
            api.create_run(name=run, method=method, r=8, domain="math", base_model="tiny")
            for epoch in (1, 2):
                made = _checkpoint(api, root, run, epoch, epoch == 2)
                if run == RUN:
                    ids[epoch] = made
    return ids


def seed_forgetting(api_url: str, token: str, root: Path) -> None:
    """Register ``FORGET`` with the base as epoch 0 and epoch 1, forgetting suite only."""
    with ApiClient(api_url, token=token) as api:
        api.create_run(name=FORGET, method="rasa", r=8, domain="math", base_model="tiny")
        for epoch, solved in _SOLVED.items():
            tasks = [choice_task(t, s, s, _FORGETTING_METRIC[t]) for t, s in solved.items()]
            _checkpoint(api, root, FORGET, epoch, epoch == max(_SOLVED), tasks, "forgetting")


def _checkpoint(
    api: ApiClient,
    root: Path,
    run: str,
    epoch: int,
    final: bool,
    tasks: list[SyntheticTask] | None = None,
    suite: str = "math",
) -> int:
    """Register one checkpoint and complete its one job with a results directory's rows."""
    out = write_results_dir(root / f"{run}-{epoch}", tasks or _tasks(epoch, run))
    made = api.register_checkpoint(
        run, epoch=epoch, step=10 * epoch, uri=str(out), sha256=f"{run}-{epoch}",
        final=final, suites=[suite],
    )  # fmt: skip
    job = api.claim("compare-seed", lease_s=60)
    results = json.loads((out / "results.json").read_text())
    if "math" in results["tasks"]:
        results["tasks"]["math"]["metrics"]["acc"]["stderr"] = STDERR[epoch]
    samples = {
        p.name.removeprefix("samples_").removesuffix(".jsonl"): read_jsonl(p)
        for p in out.glob("samples_*.jsonl")
    }
    api.complete(job["id"], "compare-seed", results, samples)
    return made["checkpoint"]["id"]
