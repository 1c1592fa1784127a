"""HumanEval+ is scored in the bubblewrap jail, or in the sandbox's weak basic mode only where
the operator allowed it (``--allow-basic-sandbox``); each task's results say which.

The jail is taken away two ways, both real: in this process bwrap is "not installed" or
"refused" (as tests/test_sandbox_isolation.py does it); for ``evalsuite eval`` in a child
process, CAP_SYS_ADMIN is dropped from its capability bounding set (``setpriv``), which is
what Docker's default grants do to the worker and what made the shipped deployment fall back
to basic mode unannounced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.demo.data import write_demo_data
from evalsuite.engines import Completion
from evalsuite.scoring.code.isolation import (
    ALLOW_BASIC_FLAG,
    BasicSandboxRefused,
    check_jail,
    sandbox_policy,
)
from evalsuite.scoring.sandbox import jail as sandbox_jail
from evalsuite.tasks.code_scorer import humaneval_plus_scorer
from evalsuite.tasks.data import load_task_data
from evalsuite.tasks.registry import TaskRegistry

# the capability Docker withholds by default: without it root cannot make the jail's namespaces
NO_SYS_ADMIN = ["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin"]
needs_root_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="dropping CAP_SYS_ADMIN for a child process needs root and setpriv (util-linux)",
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_demo_data(tmp_path_factory.mktemp("data"), forgetting_docs=1)


@pytest.fixture(scope="module")
def code_task(data_dir):
    """The real humaneval_plus task on the demo's problems, answered by their solutions."""
    spec = TaskRegistry().tasks["humaneval_plus"]
    docs = load_task_data(spec, data_dir, limit=None).docs
    completions = [[Completion("\n" + d["canonical_solution"], 9, "stop")] for d in docs]
    return spec, docs, completions


def _no_jail(monkeypatch, bwrap: str | None) -> None:
    monkeypatch.setattr(sandbox_jail, "bwrap_path", lambda: bwrap)


@pytest.mark.parametrize(
    ("bwrap", "why"),
    [(None, "apt-get install bubblewrap"), ("/bin/false", "the sandbox zygote exited")],
    ids=["missing", "refused"],
)
def test_without_a_jail_humaneval_is_refused_with_the_reason_and_the_fixes(
    monkeypatch, code_task, bwrap, why
):
    spec, docs, completions = code_task
    _no_jail(monkeypatch, bwrap)
    with pytest.raises(BasicSandboxRefused) as refused:
        humaneval_plus_scorer(spec, docs, completions)
    message = str(refused.value)
    assert "refusing to score humaneval_plus in the sandbox's basic mode" in message
    assert why in message  # the Sandbox's own why_not
    assert ALLOW_BASIC_FLAG in message and "EVALSUITE_ALLOW_BASIC_SANDBOX=1" in message
    assert "docker-compose.yml" in message  # and the other fix: the deployment's grants


def test_allowed_basic_mode_scores_and_says_so(monkeypatch, code_task):
    spec, docs, completions = code_task
    _no_jail(monkeypatch, None)
    with sandbox_policy(True):
        scored = humaneval_plus_scorer(spec, docs, completions)
    assert scored.metrics["pass@1"].value == 1.0  # the solutions pass there too
    assert scored.sandbox is not None
    assert scored.sandbox["isolation"] == "basic" and scored.sandbox["basic_allowed"] is True
    assert "bwrap not found" in scored.sandbox["why_not"]
    assert scored.sandbox["info"]["namespaces"] is False  # the Sandbox's own report, whole


def test_the_policy_ends_with_its_block(monkeypatch, code_task):
    spec, docs, completions = code_task
    _no_jail(monkeypatch, None)
    with sandbox_policy(True):
        pass
    with pytest.raises(BasicSandboxRefused):
        humaneval_plus_scorer(spec, docs, completions)


def test_with_the_jail_the_score_records_namespaces(code_task):
    spec, docs, completions = code_task
    scored = humaneval_plus_scorer(spec, docs, completions)
    assert scored.metrics["pass@1"].value == 1.0
    assert scored.sandbox is not None
    assert scored.sandbox["isolation"] == "namespaces" and scored.sandbox["why_not"] is None
    assert scored.sandbox["basic_allowed"] is False
    assert scored.sandbox["info"]["namespaces"] is True


def test_check_jail_reports_the_jail_it_found():
    info = check_jail(allow_basic=False)
    assert info["namespaces"] is True and info["why_not"] is None


# --- evalsuite eval, end to end on the tiny model ---------------------------------------------


def _eval(base: Path, out: Path, data_dir: Path, *extra: str, jail: bool = True, **env: str):
    argv = [
        sys.executable, "-m", "evalsuite.cli", "eval", "--base", str(base), "--out", str(out),
        "--suite", "code", "--engine", "hf", "--data-dir", str(data_dir), "--n-samples", "1",
        "--max-new-tokens", "8", "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv if jail else [*NO_SYS_ADMIN, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


def _sandbox(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return results["tasks"]["humaneval_plus"]["sandbox"]


@needs_root_setpriv
@pytest.mark.slow
def test_eval_without_the_jail_refuses_before_generating(tiny_base, data_dir, tmp_path):
    out = tmp_path / "refused"
    done = _eval(tiny_base, out, data_dir, jail=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to score humaneval_plus" in done.stderr
    assert "Creating new namespace failed" in done.stderr  # bwrap's own reason
    assert ALLOW_BASIC_FLAG in done.stderr
    # refused before the model was loaded: no answers cached, no results written
    assert not (out / "cache").exists() and not (out / "results.json").exists()


@needs_root_setpriv
@pytest.mark.slow
def test_eval_allowed_basic_records_basic(tiny_base, data_dir, tmp_path):
    flag = _eval(tiny_base, tmp_path / "flag", data_dir, ALLOW_BASIC_FLAG, jail=False)
    assert flag.returncode == 0, flag.stdout + flag.stderr
    record = _sandbox(tmp_path / "flag")
    assert record["isolation"] == "basic" and record["basic_allowed"] is True
    assert "Creating new namespace failed" in record["why_not"]
    env = _eval(
        tiny_base, tmp_path / "env", data_dir, jail=False, EVALSUITE_ALLOW_BASIC_SANDBOX="1"
    )
    assert env.returncode == 0, env.stdout + env.stderr
    assert _sandbox(tmp_path / "env")["isolation"] == "basic"


@pytest.mark.slow
def test_eval_with_the_jail_records_namespaces(tiny_base, data_dir, tmp_path):
    done = _eval(tiny_base, tmp_path / "jailed", data_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    record = _sandbox(tmp_path / "jailed")
    assert record["isolation"] == "namespaces" and record["why_not"] is None
    assert record["basic_allowed"] is False


def test_a_job_cannot_allow_basic_mode():
    """The operator's choice, never a job's: the API and the worker refuse it as an option."""
    from evalsuite.evaluation.options import JobOptions

    with pytest.raises(ValueError, match="unknown option"):
        JobOptions.model_validate({"allow_basic_sandbox": True})
