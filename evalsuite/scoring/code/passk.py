"""pass@k with the unbiased estimator of Chen et al. (2021), as EvalPlus and bigcode compute it.

Per problem with n samples of which c pass: pass@k = 1 - C(n-c, k) / C(n, k), computed as
1 - prod(1 - k / i for i in n-c+1..n) (numerically stable, the same float arithmetic as
both references). The benchmark number is the mean over problems. Both references report
pass@k only when every problem has at least k samples (``total.min() >= k``); otherwise
the value is absent (None here), never an estimate from fewer samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DEFAULT_KS = (1, 10)


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def pass_at_k(
    counts: Iterable[tuple[int, int]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float | None]:
    """Mean pass@k over problems from (n, c) per problem; None where some problem has n < k."""
    counts = list(counts)
    out: dict[str, float | None] = {}
    for k in ks:
        if not counts or min(n for n, _ in counts) < k:
            out[f"pass@{k}"] = None
        else:
            out[f"pass@{k}"] = sum(estimate_pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out
