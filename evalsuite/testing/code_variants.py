"""Deterministic sample programs built from canonical solutions, with known verdicts.

Tests and the benchmark need samples whose outcome is known without trusting the scorer:
the canonical solution (passes), and systematic ways to break it, each of which fails for a
reason that does not depend on the scorer's own logic:

* ``exception``: the function raises;
* ``wrong_type``: returns the right answer wrapped in a list;
* ``off_by_one``: returns a perturbed answer (int +1, float +1, bool negated, str with a
  space, sequence without its last item or with an extra one, None -> 0);
* ``plus_only``: right on the base inputs, perturbed on the others (passes HumanEval, fails
  HumanEval+);
* ``infinite``: loops for ever in the function (each input hits its time limit);
* ``slow``: correct, after ``seconds`` of busy work when the program is loaded.
"""

from __future__ import annotations

from evalsuite.scoring.code.data import Problem

KINDS = ("canonical", "exception", "wrong_type", "off_by_one", "plus_only", "infinite", "slow")

_PERTURB = """
def _evalsuite_perturb(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + " "
    if isinstance(r, (list, tuple)):
        return r[:-1] if r else type(r)([0])
    if r is None:
        return 0
    return [r]
"""


def _wrapped(problem: Problem, body: str, extra: str = "") -> str:
    """The canonical program, then the entry point redefined around the original."""
    ep = problem.entry_point
    return (
        problem.canonical_program
        + "\n"
        + extra
        + f"\n_evalsuite_ref = {ep}\n\n\ndef {ep}(*args):\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
    )


def variant(problem: Problem, kind: str, seconds: float = 0.3) -> str:
    """The program text of one variant (see the module docstring)."""
    ep = problem.entry_point
    if kind == "canonical":
        return problem.canonical_program
    if kind == "exception":
        return problem.prompt + "    raise ValueError('variant: exception')\n"
    if kind == "infinite":
        return problem.prompt + "    while True:\n        pass\n"
    if kind == "wrong_type":
        return _wrapped(problem, "return [_evalsuite_ref(*args)]")
    if kind == "off_by_one":
        return _wrapped(problem, "return _evalsuite_perturb(_evalsuite_ref(*args))", _PERTURB)
    if kind == "plus_only":
        base = {repr(i) for i in problem.base_input}
        extra = _PERTURB + f"\n_evalsuite_base = {base!r}\n"
        body = (
            "known = repr(list(args)) in _evalsuite_base\n"
            "r = _evalsuite_ref(*args)\n"
            "return r if known else _evalsuite_perturb(r)"
        )
        return _wrapped(problem, body, extra)
    if kind == "slow":
        spin = f"import time as _t\n\n_end = _t.process_time() + {seconds}\n"
        spin += "while _t.process_time() < _end:\n    pass\n"
        return spin + problem.canonical_program
    raise ValueError(f"unknown variant {kind!r} for {ep}; use one of {', '.join(KINDS)}")


def expected_verdict(kind: str) -> str:
    """The status a correct scorer gives the variant (evalplus mode, plus-correct)."""
    return {"canonical": "pass", "slow": "pass", "infinite": "timeout"}.get(kind, "fail")
