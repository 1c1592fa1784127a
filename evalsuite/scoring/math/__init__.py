"""MATH grading: ``items`` (rows to grade), ``extract`` (the final answer of a response),
``normalize`` / ``equiv_paper`` (the paper's Minerva normalisation and sympy equivalence),
``normalize_robust`` / ``equiv_robust`` (math-verify), ``grade`` (both modes over the
killing pool), ``worker`` and ``preload`` (what each pool process runs and imports)."""
