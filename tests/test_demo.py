"""``evalsuite demo --quick --no-serve`` end to end, as CI runs it (real model, real training,
real API, workers and engine).

The printed Tables 1-2 and curves are checked against the scores read straight from the
demo's SQLite file with plain SQL (BEST = max over epochs, LAST = the final epoch), not
through the service that printed them. The runs' checkpoints are real fine-tunes: each epoch's
update is non-zero and differs from the other epoch's, and code and math runs differ. A
second run reuses everything, trains nothing and queues nothing.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# the real model trains and is scored twice over: minutes, more than the suite-wide 900 s limit
# on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]


def _demo(root: Path, base: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "evalsuite.cli", "demo", "--quick", "--no-serve",
         "--dir", str(root), "--base", str(base)],
        capture_output=True, text=True, timeout=1500, env=_wide_terminal(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def _wide_terminal() -> dict[str, str]:
    import os

    return {**os.environ, "COLUMNS": "250"}  # one table row per line


def _stored(db: Path) -> dict[tuple[str, str, str], dict[float, float]]:
    """{(run, task, metric): {epoch: value}} of the complete scores, by plain SQL."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT runs.name, scores.task, scores.metric, checkpoints.epoch, scores.value "
            "FROM scores JOIN checkpoints ON scores.checkpoint_id = checkpoints.id "
            "JOIN runs ON checkpoints.run_id = runs.id WHERE NOT scores.partial"
        ).fetchall()
    out: dict[tuple[str, str, str], dict[float, float]] = {}
    for run, task, metric, epoch, value in rows:
        out.setdefault((run, task, metric), {})[epoch] = value
    return out


def _table_rows(output: str, title: str) -> dict[str, list[str]]:
    """Method -> the cells of its row, from the Markdown table under ``title``."""
    after = output.split(title, 1)[1].split("\n", 1)[1]  # past the rest of the rule line
    rows = {}
    for line in after.splitlines():
        if "────" in line:  # the next section's rule
            break
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0] == "8":
            rows[cells[1]] = cells[2:]
    return rows


def _curve(output: str, header: str) -> dict[str, dict[float, float]]:
    """run -> {epoch: value} from the lines printed under one curve's header."""
    section = output.split(header, 1)[1].split("curve:", 1)[0]
    curves = {}
    for line in section.splitlines():
        match = re.match(r"\s*(\S+)\s+((?:\d+: \d\.\d{4}(?:, )?)+)", line)
        if match:
            points = re.findall(r"(\d+): (\d\.\d{4})", match.group(2))
            curves[match.group(1)] = {float(e): float(v) for e, v in points}
    return curves


def _updates(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The B factors as saved (zero at initialisation in every method)."""
    tensors = load_file(checkpoint / "adapter_model.safetensors")
    return {k: v.float() for k, v in tensors.items() if "lora_B" in k or "rasa_B" in k}


def _check_trained(root: Path) -> None:
    finals = {}
    for domain in ("code", "math"):
        for method in ("lora", "rasa"):
            ckpts = sorted((root / "runs" / domain / method).glob("checkpoint-*"))
            assert len(ckpts) == 2, ckpts
            first, last = (_updates(c) for c in ckpts)
            assert all(v.abs().max() > 0 for v in first.values())  # epoch 1 trained already
            assert any(not torch.equal(first[k], last[k]) for k in first)
            finals[(domain, method)] = last
    for method in ("lora", "rasa"):
        code, math = finals[("code", method)], finals[("math", method)]
        assert any(not torch.allclose(code[k], math[k]) for k in code)  # other data, other run


def test_quick_demo_prints_what_the_database_holds(tmp_path, smollm2):
    root = tmp_path / "demo"
    output = _demo(root, smollm2)
    _check_trained(root)
    assert "8 new job(s) for 4 runs" in output
    stored = _stored(root / "evalsuite.db")
    runs = {run for run, _, _ in stored}
    assert runs == {"lora-r8-code", "rasa-r8-code", "lora-r8-math", "rasa-r8-math"}

    code = _table_rows(output, "Table 1: code (HumanEval+)")
    for method, run in (("LoRA", "lora-r8-code"), ("RaSA", "rasa-r8-code")):
        # columns: Time, PASS@1 BEST, PASS@1 LAST, PASS@10 BEST, PASS@10 LAST, #params, #extra
        cells = code[method]
        for offset, metric in ((1, "pass@1"), (3, "pass@10")):
            by_epoch = stored[(run, "humaneval_plus", metric)]
            assert float(cells[offset]) == pytest.approx(100 * max(by_epoch.values()), abs=0.05)
            last = by_epoch[max(by_epoch)]
            assert float(cells[offset + 1]) == pytest.approx(100 * last, abs=0.05)
    math = _table_rows(output, "Table 2: math (MATH)")
    for method, run in (("LoRA", "lora-r8-math"), ("RaSA", "rasa-r8-math")):
        by_epoch = stored[(run, "math", "acc")]
        assert float(math[method][1]) == pytest.approx(100 * max(by_epoch.values()), abs=0.05)

    # the forgetting curves' numbers: every epoch's stored mean, printed to 4 decimals
    for domain in ("code", "math"):
        printed = _curve(output, f"curve: forgetting forgetting_score by epoch ({domain} runs)")
        assert set(printed) == {f"lora-r8-{domain}", f"rasa-r8-{domain}"}
        for run, points in printed.items():
            by_epoch = stored[(run, "forgetting", "forgetting_score")]
            assert points == pytest.approx(by_epoch, abs=1e-4)
            assert 0 < max(by_epoch.values()) < 1  # chance-level multiple choice

    again = _demo(root, smollm2)  # everything trained and scored already
    assert "0 new job(s) for 4 runs" in again
    assert "training " not in again
    assert _stored(root / "evalsuite.db") == stored
