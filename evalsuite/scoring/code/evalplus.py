"""EvalPlus mode: ``evalplus.evaluate`` semantics (0.3.1), decided outside the sandbox.

Per sample, base and plus inputs run in two separate processes. Within one, the program is
executed once and the entry point called on each input in order with a limit of
``max(min_time_limit, factor * ground-truth time)`` seconds; the first input that raises,
runs out of time or returns a wrong value ends it (EvalPlus' default ``fast_check``), and
the whole process may take ``min(60, sum of limits) + 2`` seconds before it is killed.

Comparison, as ``evalplus.eval.unsafe_execute`` does it:
``out == exp``, else, when a tolerance applies, same type, same length for sequences and
``np.allclose(out, exp, rtol=1e-7, atol)``; the tolerance is the task's ``atol``, or 1e-6
from the first input whose expected output is a float (or list of floats) on, when the
task's is 0 (it sticks for the later inputs, as in EvalPlus). An output whose payload is
implausible for its input (``SplitTruth.bound``: far bigger than the expected one, or one
that would decode to far more memory) is refused unread, as a wrong output.

``find_zero`` (HumanEval/32) is checked with EvalPlus' oracle ``abs(poly(xs, x)) <= atol``,
but on the scorer's own copy of ``xs`` and only for an ``x`` that is a real number: EvalPlus
evaluates the input as the program left it, so ``xs.clear(); return 0.0`` passes there.

``quirks=True`` instead reproduces what EvalPlus 0.3.1 does for find_zero: its oracle, on
the input after the call, and skipping the progress counter, so every HumanEval/32 sample
ends "fail" there (which is why the mutated-input hole cannot produce a pass in that mode
either). Off by default: the intended oracle (canonical solutions pass) is what the protocol
asks for.

Statuses: ours are pass / fail (wrong output) / error (exception, crash, early exit) /
timeout (an input over its limit, or the process over its limit). ``evalplus_status``
is what EvalPlus would print: pass, fail, or timeout (a process that ended without a
verdict: killed at the limit, crashed, or ``os._exit``).
"""

from __future__ import annotations

import math
import numbers
import pickle
import sys
from dataclasses import dataclass
from typing import Any

from evalsuite.scoring.code.data import Problem
from evalsuite.scoring.code.truth import GroundTruth, SplitTruth
from evalsuite.scoring.sandbox import wire
from evalsuite.scoring.sandbox.box import ExitInfo, Job
from evalsuite.scoring.sandbox.child import LOAD_FAILED, SETUP_FAILED

DEFAULT_MIN_TIME_LIMIT = 4.0  # PROTOCOL 2 (EvalPlus 0.3.1's own default is 1.0)
DEFAULT_FACTOR = 4.0
OUTPUT_KEPT = 2000  # characters of a program's output kept in the report


@dataclass(frozen=True)
class Outcome:
    """What became of one program (one split of a sample, or one paper-mode run)."""

    status: str  # pass / fail / error / timeout
    reference_status: str  # the status the reference tool reports
    failed_index: int | None = None  # position among the inputs this run checks
    detail: str = ""
    seconds: float = 0.0
    output: str = ""  # the start of what the program printed (stdout and stderr)


def limits(times: list[float], min_time_limit: float, factor: float) -> list[float]:
    return [max(min_time_limit, factor * t) for t in times]


def hard_limit(per_input: list[float]) -> float:
    """EvalPlus: join(min(60, sum) + 1 + 1) after start (``fast_check``)."""
    return min(60.0, sum(per_input)) + 2.0


def sandbox_tasks(
    problems: dict[str, Problem], truth: GroundTruth, min_time_limit: float, factor: float
) -> dict[str, dict[str, Any]]:
    """What the sandbox gets per task: inputs and limits, never outputs."""
    tasks = {}
    for task_id, p in problems.items():
        t = truth.tasks[task_id]
        tasks[task_id] = {
            "entry_point": p.entry_point,
            "special": p.entry_point == "find_zero",
            "base_inputs": pickle.dumps(p.base_input, protocol=5),
            "plus_inputs": pickle.dumps(p.plus_input, protocol=5),
            "base_limits": limits(t.base.wall, min_time_limit, factor),
            "plus_limits": limits(t.plus.wall, min_time_limit, factor),
        }
    return tasks


def job(task_id: str, split: str, program: str, task: dict[str, Any]) -> Job:
    return Job("evalplus", program, hard_limit(task[f"{split}_limits"]), task_id, split)


def poly(xs: list[Any], x: Any) -> Any:
    """EvalPlus' ``_poly`` (the problem's own ``poly``): sum of coeff * x**i."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


# elementwise comparisons (numpy's ==, np.allclose) broadcast their two sides: an (n, 1)
# output against an (n,) answer is an n x n array. A comparison that would broadcast to more
# elements than this counts as unequal instead of costing the scorer n^2 memory and time
# (the reference tools would compute it; no honest output has such a shape).
MAX_BROADCAST = 10**7


def broadcast_too_large(out: Any, exp: Any) -> bool:
    """Whether comparing ``out`` and ``exp`` element by element would broadcast past both
    sides' own sizes and past ``MAX_BROADCAST`` elements (False when they do not broadcast
    at all: numpy then refuses cheaply)."""
    import numpy as np

    try:
        a, b = np.shape(out), np.shape(exp)
        shape = np.broadcast_shapes(a, b)
    except Exception:  # ragged, or shapes that do not broadcast: no n x n array is made
        return False
    size = math.prod(shape)
    return size > MAX_BROADCAST and size > max(math.prod(a), math.prod(b))


def elementwise(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray | numpy.generic)


def evalplus_equal(out: Any, exp: Any, atol: float) -> bool:
    """``unsafe_execute``'s check for one output, on decoded data; False wherever it raises."""
    try:
        import numpy as np

        if (elementwise(out) or elementwise(exp)) and broadcast_too_large(out, exp):
            return False
        exact_match = out == exp
        if not exact_match and atol != 0:
            if type(out) != type(exp):  # noqa: E721 - EvalPlus compares types exactly
                return False
            if isinstance(exp, list | tuple) and len(out) != len(exp):
                return False
            if broadcast_too_large(out, exp):
                return False
            return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
        return bool(exact_match)
    except Exception:
        return False


def real_root(value: Any) -> float | None:
    """A find_zero answer as a float, or None when it is not one real number.

    Python and numpy ints and floats (bool included: ``True == 1``) and subclasses of int and
    float count; a list, a complex number or an array does not, whatever it holds.
    """
    if isinstance(value, wire.SubValue):
        value = value.value
    if not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        return None


def root_ok(out: Any, inp: list[Any], atol: float) -> bool:
    """``abs(poly(xs, x)) <= atol`` for ``inp = [xs]`` held by the scorer and ``x = out``."""
    x = real_root(out)
    if x is None:
        return False
    try:
        return bool(abs(poly(*inp, x)) <= atol)
    except (ArithmeticError, TypeError, ValueError):
        return False


def find_zero_ok(payload: bytes, atol: float, bound: wire.Bound) -> bool:
    """EvalPlus' HumanEval/32 oracle as it runs: on (output, input after the call)."""
    try:
        out, inp = wire.decode(payload, bound)
        return bool(abs(poly(*inp, out)) <= atol)
    except Exception:
        return False


class Checker:
    """Feeds on one run's records; knows the verdict as soon as an input fails."""

    PASS, FAIL, LOST = "pass", "fail", "timeout"  # the reference tool's words
    wrong = "wrong output"

    def __init__(self, n: int, inputs: list[Any]) -> None:
        self.n, self.inputs, self.next = n, inputs, 0
        self.outcome: Outcome | None = None
        self.refused = ""  # why the last payload was not read, if it was not

    def decode(self, payload: bytes, bound: wire.Bound) -> tuple[bool, Any]:
        """(True, value), or (False, None) for a payload refused or not decodable (noted)."""
        try:
            return True, wire.decode(payload, bound)
        except wire.DecodeError as e:
            self.refused = f"output refused: {e}"
            return False, None

    def root_ok(self, index: int, payload: bytes, bound: wire.Bound, atol: float) -> bool:
        """find_zero: the root the program sent, on the scorer's copy of the input."""
        ok, value = self.decode(payload, bound)  # (output, the input as the program left it)
        if not ok or type(value) is not tuple or len(value) != 2:
            return False
        return root_ok(value[0], self.inputs[index], atol)

    def fail(self, status: str, index: int | None, detail: str) -> bool:
        if self.outcome is None:
            self.outcome = Outcome(status, self.FAIL, index, detail)
        return True

    def check(self, index: int, sig: bytes, payload: bytes) -> bool:  # pragma: no cover
        raise NotImplementedError

    def feed(self, kind: int, index: int, sig: bytes, payload: bytes) -> bool:
        if self.outcome is not None:
            return True
        if kind == wire.STAGE:
            return False
        text = payload.decode("utf-8", "replace")
        if index == SETUP_FAILED:
            return self.fail("error", None, text)
        if index == LOAD_FAILED and kind == wire.EXC:
            return self.fail("error", None, text)
        if index != self.next:
            return self.fail("error", None, f"records out of order ({index} after {self.next})")
        if kind == wire.OUT:
            if self.check(index, sig, payload):
                self.next += 1
                return False
            return self.fail("fail", index, self.refused or self.wrong)
        if kind == wire.TIMEOUT:
            return self.fail("timeout", index, "over the time limit for this input")
        if kind == wire.UNENCODABLE:
            return self.fail("error", index, f"output not sendable: {text}")
        return self.fail("error", index, text)  # EXC: the call raised

    def finish(self, exit: ExitInfo) -> Outcome:
        outcome = self.outcome or self.ended(exit)
        return Outcome(
            outcome.status,
            outcome.reference_status,
            outcome.failed_index,
            outcome.detail,
            exit.seconds,
            exit.output[:OUTPUT_KEPT],
        )

    def ended(self, exit: ExitInfo) -> Outcome:
        if self.next == self.n:
            return Outcome("pass", self.PASS)
        if exit.protocol_error:
            return Outcome("error", self.FAIL, self.next, f"bad records: {exit.protocol_error}")
        where = f"at input {self.next} of {self.n}"
        if exit.hit_limit == "memory limit":
            detail = f"memory limit hit {where} (the slot's cgroup killed a process)"
            return Outcome("error", self.LOST, self.next, detail)
        if exit.hit_limit is not None:
            return Outcome("timeout", self.LOST, self.next, f"{exit.hit_limit} hit {where}")
        return Outcome("error", self.LOST, self.next, f"ended {where} ({exit.cause})")


class EvalPlusChecker(Checker):
    def __init__(self, problem: Problem, split: str, truth: GroundTruth, quirks: bool) -> None:
        inputs = problem.base_input if split == "base" else problem.plus_input
        super().__init__(len(inputs), inputs)
        self.problem, self.split, self.truth, self.quirks = problem, split, truth, quirks
        self.facts: SplitTruth = getattr(truth.tasks[problem.task_id], split)
        self.special = problem.entry_point == "find_zero"

    def atol(self, index: int) -> float:
        first = self.facts.first_float
        if self.problem.atol == 0 and first is not None and index >= first:
            return 1e-6
        return self.problem.atol

    def check(self, index: int, sig: bytes, payload: bytes) -> bool:
        if self.special and self.quirks:
            return find_zero_ok(payload, self.problem.atol, self.facts.bound(index))
        if self.special:
            return self.root_ok(index, payload, self.facts.bound(index), self.problem.atol)
        if sig == self.facts.digest(index):  # only a program that has the answer can send it
            return True
        ok, out = self.decode(payload, self.facts.bound(index))
        if not ok:
            return False
        expected = self.truth.outputs(self.problem.task_id)[self.split][index]
        return evalplus_equal(out, expected, self.atol(index))

    def ended(self, exit: ExitInfo) -> Outcome:
        if self.quirks and self.special and self.next == self.n:
            return Outcome("fail", self.FAIL, None, "EvalPlus 0.3.1 fails every find_zero sample")
        return super().ended(exit)
