"""Which sandbox a HumanEval+ score may come from, and the record of the one it came from.

Generated code is scored in the bubblewrap jail (``namespaces``). Where the jail cannot start
(no bwrap; a container without the grants: README, "Deployment") the sandbox can fall back
to ``basic`` mode, which only an audit hook confines: a hostile program can read the host's
files there. A fallback nobody asked for is how a deployment ends up scoring checkpoints in
basic mode without anyone knowing, so the evaluation refuses it unless the operator allows it
(``--allow-basic-sandbox`` on ``evalsuite eval`` and ``evalsuite worker``, or
``EVALSUITE_ALLOW_BASIC_SANDBOX=1``): it is the operator's decision about the machine, never a
job's option. The refusal names why the jail could not start and both fixes.

The policy reaches the scorer through :func:`sandbox_policy` (a context variable): scorers are
plugins with a fixed signature, and the policy is not part of the task, so it must stay out of
the task's config (whose hash decides which scores are comparable).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Annotated, Any

import typer

from evalsuite.results_schema import SANDBOX_MODES
from evalsuite.scoring.errors import ScoringError

# the scorers that run generated code in the sandbox (their tasks get a "sandbox" record)
SANDBOXED_SCORERS = ("humaneval_plus",)
ALLOW_BASIC_FLAG = "--allow-basic-sandbox"
# the isolation names a record may hold: the jail, or the audit-hook fallback
JAILED, BASIC = SANDBOX_MODES

AllowBasicSandboxOption = Annotated[
    bool,
    typer.Option(
        ALLOW_BASIC_FLAG,
        help="Score HumanEval+ in the sandbox's weak basic mode when the bubblewrap jail "
        "cannot start, instead of refusing (default: $EVALSUITE_ALLOW_BASIC_SANDBOX, else "
        "refuse). Each score records the mode it ran in.",
    ),
]

_allow_basic: ContextVar[bool] = ContextVar("evalsuite_allow_basic_sandbox", default=False)


class BasicSandboxRefused(ScoringError):
    """The jail cannot start here and basic mode was not allowed: nothing was scored."""


@contextlib.contextmanager
def sandbox_policy(allow_basic: bool) -> Iterator[None]:
    """Within the block, HumanEval+ may fall back to basic mode only if ``allow_basic``."""
    token = _allow_basic.set(allow_basic)
    try:
        yield
    finally:
        _allow_basic.reset(token)


def basic_allowed() -> bool:
    """The policy in force (off outside :func:`sandbox_policy`: the jail or nothing)."""
    return _allow_basic.get()


def isolation_for(allow_basic: bool) -> str:
    """The Sandbox's ``isolation`` argument: a fallback only where it was allowed."""
    return "auto" if allow_basic else JAILED


def refusal(why_not: str, tasks: Iterable[str] = ("humaneval_plus",)) -> str:
    """The refusal's message: what was not done, why, and the two ways forward."""
    return (
        f"refusing to score {', '.join(tasks)} in the sandbox's basic mode: the bubblewrap "
        f"jail cannot start here ({why_not}). Fix the machine (install bubblewrap; in Docker "
        "the worker service of docker-compose.yml has the grants the jail needs: README.md, "
        f"'Deployment'), or accept the weaker sandbox with {ALLOW_BASIC_FLAG} "
        "(EVALSUITE_ALLOW_BASIC_SANDBOX=1); the scores then record sandbox isolation 'basic'"
    )


def check_jail(allow_basic: bool, tasks: Iterable[str] = ("humaneval_plus",)) -> dict[str, Any]:
    """Start a sandbox once with nothing to run and return its ``info``; raise
    :class:`BasicSandboxRefused` if it fell back to basic mode and that is not allowed.

    About a second, so the runner calls it before loading a model and generating: a refusal
    then costs nothing, where one at scoring time would throw the generation away."""
    from evalsuite.scoring.sandbox.box import Sandbox

    with Sandbox({}, workers=1, isolation="auto") as box:
        info = dict(box.info)
    if not info.get("namespaces") and not allow_basic:
        raise BasicSandboxRefused(refusal(str(info.get("why_not")), tasks))
    return info


def sandbox_record(info: dict[str, Any], allow_basic: bool) -> dict[str, Any]:
    """The provenance a task's results carry (``results_schema.SandboxRecord``)."""
    return {
        "isolation": JAILED if info.get("namespaces") else BASIC,
        "why_not": info.get("why_not"),
        "basic_allowed": allow_basic,
        "info": info,
    }
