"""The CI skip rule, run on throwaway test files through a real pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPS = """
import pytest
def test_no_database():
    pytest.skip("PostgreSQL unreachable")
def test_gpu():
    pytest.skip("needs a GPU (CUDA)")
def test_runs():
    assert True
"""
MODULE_SKIP = 'import pytest\npytest.importorskip("no_such_module_xyz")\ndef test_x():\n    pass\n'


def _pytest(tmp_path: Path, source: str, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(source)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(HERE), "CI": "true" if ci else "false"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "ci_skips", "-p", "no:cacheprovider",
         str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("ci", [True, False])
def test_a_skip_fails_in_ci_unless_allowed(tmp_path: Path, ci: bool) -> None:
    run = _pytest(tmp_path, SKIPS, ci)
    if ci:
        assert run.returncode == 1, run.stdout
        assert "1 failed, 1 passed, 1 skipped" in run.stdout
        assert "skipped in CI: PostgreSQL unreachable" in run.stdout
    else:
        assert run.returncode == 0 and "1 passed, 2 skipped" in run.stdout, run.stdout


def test_a_module_skipped_whole_fails_in_ci(tmp_path: Path) -> None:
    run = _pytest(tmp_path, MODULE_SKIP, ci=True)
    assert run.returncode != 0 and "skipped in CI" in run.stdout, run.stdout
    assert "1 skipped" in _pytest(tmp_path, MODULE_SKIP, ci=False).stdout
