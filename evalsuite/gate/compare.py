"""Run the gate's checks on two sources and decide: pass (0), regression (1), cannot decide (2).

Order of refusal: a check is compared only when both sides are complete runs (not partial),
were made with the same task settings, data, prompt, materialisation, dtype and engine, and
cover the same documents. Any refused check makes the whole gate "cannot decide" (exit 2)
even when another check regressed: a comparison of unlike things proves nothing, and CI must
not read a 1 as "the only problem is a regression".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalsuite.errors import EvalsuiteError
from evalsuite.gate.evidence import (
    GateInputError,
    Source,
    TaskEvidence,
    check_reproduces,
    default_checks,
    metric_is_known,
    per_document,
)
from evalsuite.gate.stats import DEFAULT_N_BOOT, PairedResult, is_regression, paired_bootstrap

PASS, REGRESSION, CANNOT_DECIDE = "pass", "regression", "cannot_decide"
EXIT_CODES = {PASS: 0, REGRESSION: 1, CANNOT_DECIDE: 2}


@dataclass(frozen=True)
class GateSettings:
    max_drop: float = 1.0  # points (percentage points of the metric)
    alpha: float = 0.05
    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0


@dataclass
class CheckResult:
    task: str
    metric: str
    status: str
    reason: str | None = None
    candidate_where: str | None = None
    baseline_where: str | None = None
    result: PairedResult | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["result"] = self.result.as_dict() if self.result else None
        if self.result:  # the same numbers in points, as the table shows them
            r = self.result
            out["points"] = {
                "baseline": 100 * r.baseline,
                "candidate": 100 * r.candidate,
                "diff": 100 * r.diff,
                "ci_low": 100 * r.ci_low,
                "ci_high": 100 * r.ci_high,
            }
        return out


@dataclass
class GateReport:
    candidate: str
    baseline: str
    settings: GateSettings
    checks: list[CheckResult]
    reasons: list[str] = field(default_factory=list)  # refusals not tied to one check

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.checks}
        if self.reasons or CANNOT_DECIDE in statuses or not self.checks:
            return CANNOT_DECIDE
        return REGRESSION if REGRESSION in statuses else PASS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def general_reasons(self) -> list[str]:
        """Refusals that concern no single check."""
        if not self.checks and not self.reasons:
            return ["nothing to compare: the two sides have no task and metric in common"]
        return list(self.reasons)

    def all_reasons(self) -> list[str]:
        checks = [f"{c.task}/{c.metric}: {c.reason}" for c in self.checks if c.reason]
        return self.general_reasons() + checks

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "settings": asdict(self.settings),
            "reasons": self.all_reasons(),
            "checks": [c.as_dict() for c in self.checks],
        }


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Absent:
    def __repr__(self) -> str:
        return "(not set)"


_ABSENT = _Absent()


def _namespace(key: str) -> str:
    return "config" if key.startswith("config.") else key


def unlike_reasons(candidate: TaskEvidence, baseline: TaskEvidence) -> list[str]:
    """Why these two cannot be compared (empty when they can)."""
    reasons = [
        f"the {side} run is partial (--limit): {ev.where}; gate complete runs only"
        for side, ev in (("candidate", candidate), ("baseline", baseline))
        if ev.partial
    ]
    spaces = [{_namespace(k) for k in ev.identity} for ev in (candidate, baseline)]
    for key in sorted(set(candidate.identity) | set(baseline.identity)):
        if not all(_namespace(key) in space for space in spaces):
            continue  # what only one kind of source records: the full config, config_hash
        a = candidate.identity.get(key, _ABSENT)
        b = baseline.identity.get(key, _ABSENT)
        if a != b:
            reasons.append(f"{key} differs: candidate {_fmt(a)}, baseline {_fmt(b)}")
    if len(reasons) == 1 and reasons[0].startswith("config_hash "):
        reasons[0] += (
            " (the service hashes the task's whole config: sampling, stop strings, scorer, "
            "prompt and data settings; compare the two runs' results.json to see which)"
        )
    return reasons


def _doc_set_reason(cand: dict[str, float], base: dict[str, float]) -> str | None:
    if set(cand) == set(base):
        return None
    only_c, only_b = sorted(set(cand) - set(base)), sorted(set(base) - set(cand))
    return (
        f"different documents: {len(only_c)} only in the candidate {only_c[:5]}, "
        f"{len(only_b)} only in the baseline {only_b[:5]}"
    )


@dataclass
class Pairing:
    """Both sides' per-document values of one (task, metric), or why they cannot be paired.

    Everything the gate checks before its bootstrap, shared with ``evalsuite compare`` so the
    two refuse the same things and pair the same documents."""

    candidate: TaskEvidence | None = None
    baseline: TaskEvidence | None = None
    candidate_values: dict[str, float] = field(default_factory=dict)
    baseline_values: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    @property
    def docs(self) -> list[str]:
        """The paired documents, in the baseline's order."""
        return list(self.baseline_values)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(candidate, baseline) values over ``docs``."""
        docs = self.docs
        return (
            np.array([self.candidate_values[d] for d in docs]),
            np.array([self.baseline_values[d] for d in docs]),
        )

    def bootstrap(self, settings: GateSettings) -> PairedResult:
        """The gate's paired bootstrap of ``candidate - baseline`` on these documents."""
        cand, base = self.arrays()
        return paired_bootstrap(
            cand, base, alpha=settings.alpha, n_boot=settings.n_boot, seed=settings.seed
        )


def pair_documents(task: str, metric: str, candidate: Source, baseline: Source) -> Pairing:
    """Evidence of both sides, the refusals (unknown metric, unlike settings, values that do
    not reproduce the stored metric, different documents) and the per-document values."""
    pairing = Pairing()
    try:
        cand_ev, base_ev = candidate.evidence(task, metric), baseline.evidence(task, metric)
        pairing.candidate, pairing.baseline = cand_ev, base_ev
        for side, ev in (("candidate", cand_ev), ("baseline", base_ev)):
            if not metric_is_known(metric, ev.stored):
                known = ", ".join(sorted(m for m in ev.stored if "/" not in m)) or "none"
                raise GateInputError(f"the {side} has no metric {metric!r} (stored: {known})")
        reasons = unlike_reasons(cand_ev, base_ev)
        if reasons:
            pairing.reason = "; ".join(reasons)
            return pairing
        cand = per_document(cand_ev.load_rows(), metric)
        base = per_document(base_ev.load_rows(), metric)
        check_reproduces(cand, cand_ev.stored.get(metric), f"candidate {cand_ev.where}")
        check_reproduces(base, base_ev.stored.get(metric), f"baseline {base_ev.where}")
        pairing.reason = _doc_set_reason(cand, base)
        if pairing.reason:
            return pairing
        if not cand:
            raise GateInputError("no document has a value for this metric on either side")
        pairing.candidate_values, pairing.baseline_values = cand, base
    except EvalsuiteError as e:  # GateInputError, or the service's ApiError
        pairing.reason = str(e)
    return pairing


def run_check(
    task: str, metric: str, candidate: Source, baseline: Source, settings: GateSettings
) -> CheckResult:
    """One (task, metric) comparison; every refusal becomes a cannot-decide result."""
    check = CheckResult(task, metric, CANNOT_DECIDE)
    pairing = pair_documents(task, metric, candidate, baseline)
    if pairing.candidate is not None and pairing.baseline is not None:
        check.candidate_where, check.baseline_where = (
            pairing.candidate.where,
            pairing.baseline.where,
        )
    if pairing.reason:
        check.reason = pairing.reason
        return check
    check.result = pairing.bootstrap(settings)
    check.status = REGRESSION if is_regression(check.result, settings.max_drop) else PASS
    return check


def run_gate(
    candidate: Source,
    baseline: Source,
    checks: list[tuple[str, str]] | None = None,
    settings: GateSettings | None = None,
) -> GateReport:
    """Compare the candidate with the baseline on ``checks`` (default: ``default_checks``)."""
    settings = settings or GateSettings()
    report = GateReport(candidate.name, baseline.name, settings, [])
    if checks is None:
        try:
            checks = default_checks(candidate.tasks(), baseline.tasks())
        except EvalsuiteError as e:
            report.reasons.append(str(e))
            return report
    for task, metric in checks:
        report.checks.append(run_check(task, metric, candidate, baseline, settings))
    return report
