"""The adapter analysis the runner records with each checkpoint it evaluates.

``evalsuite adapter analyze`` reports every module; what a checkpoint carries to the service
is its per-type summary (``results.json``'s ``adapter_analysis``), small enough to store
with the checkpoint and to plot over a run's epochs. Two rules keep it from costing a job:

- only low-rank kinds are analysed (exactly, from their factors: a QR of each factor and an
  SVD of the small core; for an 8B-shaped LoRA r=16 about 1 s on 2 idle cores, several times
  that on a busy machine, bench/RESULTS.md; still small beside the evaluation; the runner
  hands over the checkpoint materialize loaded, so it is not read again); kinds whose update
  is not low-rank (full fine-tunes, DoRA, MoRA) would need the dense update of every module,
  so they are skipped with a note that names the command that computes it;
- an analysis that fails for any reason becomes a note: the evaluation goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evalsuite.results_schema import AdapterAnalysis, ModuleTypeSummary

if TYPE_CHECKING:
    from evalsuite.adapters import Adapter, FullCheckpoint

# the per-type numbers kept from the analysis report's ``by_type``
SUMMARY_FIELDS = tuple(ModuleTypeSummary.model_fields)


def summarize(
    checkpoint: Path | Adapter | FullCheckpoint | None, base_dir: Path
) -> AdapterAnalysis | None:
    """The summary of a checkpoint (None for the base: no update). The runner passes the
    checkpoint materialize already loaded, so an 8B adapter is not read a second time."""
    if checkpoint is None:
        return None
    kind = "unknown"
    try:
        from evalsuite.adapters.loading import load
        from evalsuite.analysis.analyze import analyze
        from evalsuite.analysis.updates import route_of

        ckpt = load(checkpoint) if isinstance(checkpoint, Path) else checkpoint
        adapter_dir = ckpt.path
        kind = ckpt.kind
        route = route_of(ckpt)
        if not route.from_factors:
            return AdapterAnalysis(
                kind=kind,
                reported=route.reported,
                note=f"skipped: a {kind} update is not low-rank, so its analysis needs the "
                "dense update of every module; run 'evalsuite adapter analyze "
                f"{adapter_dir} --base {base_dir}' for it",
            )
        report = analyze(ckpt, base_dir, top=1)
        by_type = {
            mtype: ModuleTypeSummary.model_validate(
                {k: v for k, v in summary.items() if k in SUMMARY_FIELDS}
            )
            for mtype, summary in report["by_type"].items()
        }
        return AdapterAnalysis(kind=kind, reported=report["reported"], by_type=by_type)
    except Exception as e:  # an analysis never fails the evaluation
        return AdapterAnalysis(
            kind=kind,
            note=f"analysis failed ({type(e).__name__}: {e}); the evaluation went on without it",
        )
