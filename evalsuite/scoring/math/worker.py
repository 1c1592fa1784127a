"""What a grading worker process runs: one (mode, extracted answer, gold) task -> verdict.

Normalisation runs here too, not in the parent: Minerva's ``$...$`` regex backtracks on
adversarial input, and everything that can take long must sit under the per-item limit.

The parent imports sympy, sympy's LaTeX package and math-verify (none starts a thread),
but never builds the ANTLR converter: sympy's converter module imports
sympy.physics.quantum, hence numpy and scipy, whose BLAS starts threads, and a process with
threads should not fork. Each worker builds it in ``init_worker`` (or inherits it from the
forkserver, which imports ``PRELOAD`` once), with BLAS held to one thread.
"""

from __future__ import annotations

import functools
import os

from evalsuite.scoring.math.equiv_paper import check_backend, paper_equiv, parse_latex_exact
from evalsuite.scoring.math.equiv_robust import quiet_math_verify, robust_equiv
from evalsuite.scoring.math.normalize import normalize_final_answer

PRELOAD = ("evalsuite.scoring.math.preload",)
MathTask = tuple[str, str, str]  # (mode, extracted answer, gold final answer)
_normalize = functools.lru_cache(maxsize=1 << 14)(normalize_final_answer)  # a pure function
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def prepare() -> None:
    """Build the LaTeX parser, failing early with the fix if it cannot run here."""
    for variable in _THREAD_VARIABLES:  # this process only grades; one BLAS thread is plenty
        os.environ.setdefault(variable, "1")
    check_backend()
    quiet_math_verify()


def init_worker() -> None:
    """Pool initializer: ``prepare`` and one parse, so the first task pays no loading."""
    prepare()
    parse_latex_exact("\\frac{1}{2}")


def grade_task(task: MathTask) -> bool:
    """The verdict of one mode on one (extracted answer, gold) pair."""
    mode, answer, gold = task
    if mode == "paper":
        return paper_equiv(_normalize(answer), _normalize(gold))
    if mode == "robust":
        return robust_equiv(answer, gold)
    raise ValueError(f"unknown grading mode {mode!r}; use 'paper' or 'robust'")
