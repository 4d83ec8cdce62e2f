"""Significance against a baseline: paired tests, multiple-comparison correction, bootstrap CIs.

Pure functions over per-query score vectors, no I/O. ``a`` and ``b`` are ``(Q,)`` float arrays
holding one metric for the same Q queries in the same order (``a`` the system, ``b`` the
baseline); ``d = a - b`` is the per-query difference. :func:`compare` is the driver: it pairs
the queries of each system with the baseline's, runs one test per system, corrects the
p-values across the systems, and returns one typed :class:`Comparison` per system.

Every resampling function is seeded (``numpy.random.default_rng(seed)``) and draws in chunks of
at most ``CHUNK_ELEMENTS`` cells, so 10,000 resamples of 3,000 queries need ~32 MB, not 240 MB.
The same (inputs, n, seed) always give the same answer.

References: Smucker, Allan & Carterette, "A comparison of statistical significance tests for
information retrieval evaluation", CIKM 2007 (t-test, randomization, Wilcoxon in IR);
Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 1979;
Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.stats

CHUNK_ELEMENTS = 1 << 22  # cells (resamples x queries) drawn at once: 4M float64 = 32 MB per chunk
TIE_RTOL = 1e-9  # |perm sum| >= |obs sum| - TIE_RTOL * sum|d|: float summation order must not break ties


# ---------------------------------------------------------------- inputs


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two ``(Q,)`` float64 arrays of the same queries, Q >= 2, all finite; else ValueError."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired score vectors must be 1-D and of the same length, got shapes {a.shape} and {b.shape}")
    _check_scores(a)
    _check_scores(b)
    return a, b


def _check_scores(x: np.ndarray) -> None:
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"need a 1-D vector of at least 2 per-query scores, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"per-query scores must be finite; {int((~np.isfinite(x)).sum())} are NaN or infinite")


def _chunks(n: int, q: int) -> list[int]:
    """Resample counts per chunk: ``sum == n``, each chunk at most ``CHUNK_ELEMENTS`` cells of a (rows, q) draw."""
    rows = max(1, CHUNK_ELEMENTS // q)
    return [min(rows, n - start) for start in range(0, n, rows)]


# ---------------------------------------------------------------- paired tests: (a, b) -> two-sided p


def paired_t(a, b) -> float:
    """Two-sided paired Student t-test of mean(d) = 0, with d = a - b (``scipy.stats.ttest_rel``).

    t = mean(d) / (sd(d) / sqrt(Q)), sd with Q - 1 degrees of freedom; p = 2 P(T_{Q-1} >= |t|).
    Identical vectors (every d_i = 0) give p = 1.0 where scipy gives NaN (0 / 0): no evidence of
    a difference. Shapes: a, b (Q,), Q >= 2. Smucker, Allan & Carterette, CIKM 2007.

    >>> round(paired_t([0.2, 0.4, 0.6, 0.9], [0.1, 0.3, 0.3, 0.5]), 4)
    0.0577
    >>> paired_t([0.5, 0.25], [0.5, 0.25])
    1.0
    """
    a, b = _paired(a, b)
    if np.array_equal(a, b):
        return 1.0
    return float(scipy.stats.ttest_rel(a, b).pvalue)


def randomization(a, b, *, n: int = 10_000, seed: int = 0) -> float:
    """Fisher's paired randomization test (sign flips) of mean(d) = 0, two-sided, Monte Carlo.

    Under the null hypothesis the labels "system" and "baseline" are exchangeable within each
    query, so each d_i keeps or flips its sign with probability 1/2. With s in {-1, +1}^Q drawn
    uniformly n times (``numpy.random.default_rng(seed)``):

        p = (1 + #{k : |sum_i s_ki d_i| >= |sum_i d_i| - tol}) / (n + 1),   tol = 1e-9 * sum_i |d_i|

    The +1 counts the observed assignment among the permutations (Phipson & Smyth, "Permutation
    p-values should never be zero", 2010): p is never 0 and the test is exact-valid at every n.
    ``tol`` only absorbs float summation order, so that permutations tying the observed mean
    count as ties. ranx (0.3.21, ``ranx.statistical_tests.fisher_randomization_test``, used by
    ``ranx.compare(..., stat_test="fisher")``) uses count / n with no +1 and no tolerance, and
    shuffles each (control, treatment) pair, which is the same sign flip of d_i; the two
    conventions differ by at most 1 / (n + 1), within Monte Carlo error at n = 10,000.

    Shapes: a, b (Q,); the signs are drawn in (rows, Q) chunks of at most ``CHUNK_ELEMENTS``.
    All-zero differences give p = 1.0. Smucker, Allan & Carterette, CIKM 2007; Fisher 1935.

    >>> randomization([0.5, 0.25, 0.75], [0.5, 0.25, 0.75])
    1.0
    >>> randomization([1.0] * 12, [0.0] * 12, n=999) < 0.01  # 2 of 4096 sign patterns are as extreme
    True
    """
    a, b = _paired(a, b)
    if n < 1:
        raise ValueError(f"n (permutations) must be >= 1, got {n}")
    d = a - b  # (Q,)
    observed = abs(d.sum())
    threshold = observed - TIE_RTOL * np.abs(d).sum()
    rng = np.random.default_rng(seed)
    extreme = 0
    for rows in _chunks(n, d.shape[0]):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(rows, d.shape[0]), dtype=np.int8)  # (rows, Q) in {-1, +1}
        extreme += int((np.abs(signs @ d) >= threshold).sum())  # (rows,) permuted sums
    return (extreme + 1) / (n + 1)


def wilcoxon(a, b) -> float:
    """Two-sided Wilcoxon signed-rank test of d = a - b symmetric about 0 (``scipy.stats.wilcoxon``).

    Zero differences are dropped before ranking (``zero_method="wilcox"``, Wilcoxon 1945, as R's
    ``wilcox.test`` does): a query both systems score the same says nothing about which is
    better, and IR metrics have many (two zeros, two ones). Tied |d_i| get mid-ranks. The
    statistic is W+ = sum of the ranks of |d_i| over d_i > 0; scipy's ``method="auto"`` takes
    its exact distribution for Q <= 50 without ties or zeros, all 2^Q sign patterns for Q <= 13
    with them, else the normal approximation (tie-corrected); all three are deterministic.
    All-zero differences give p = 1.0 (scipy: NaN).
    Shapes: a, b (Q,). Smucker, Allan & Carterette, CIKM 2007.

    >>> wilcoxon([0.2, 0.4, 0.6, 0.9], [0.1, 0.3, 0.5, 0.5])  # all 4 d_i > 0: exact p = 2 / 2^4
    0.125
    >>> wilcoxon([0.5, 0.25], [0.5, 0.25])
    1.0
    """
    a, b = _paired(a, b)
    if np.array_equal(a, b):
        return 1.0
    return float(scipy.stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


TESTS: dict[str, Callable[..., float]] = {"t": paired_t, "randomization": randomization, "wilcoxon": wilcoxon}
RESAMPLING_TESTS = frozenset({"randomization"})  # the tests that take n and seed


# ---------------------------------------------------------------- multiple comparisons: (m,) -> (m,)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (controls the family-wise error rate).

    Sort p ascending, p_(1) <= ... <= p_(m); adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j));
    return them in the input order. Rejecting where adj <= alpha is Holm's procedure.
    Shapes: (m,) -> (m,). Holm, Scand. J. Statist. 1979.

    By hand, p = [0.01, 0.04, 0.03], m = 3: sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03,
    2 x 0.03 = 0.06, 1 x 0.04 = 0.04 -> running max 0.03, 0.06, 0.06 -> input order:

    >>> holm([0.01, 0.04, 0.03]).round(12).tolist()
    [0.03, 0.06, 0.06]
    """
    p = _pvalues(pvalues)
    m = p.shape[0]
    order = np.argsort(p, kind="stable")  # (m,)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])  # (m,) sorted order, monotone
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def bonferroni(pvalues) -> np.ndarray:
    """Bonferroni adjusted p-values: adj_i = min(1, m p_i). Shapes: (m,) -> (m,). Bonferroni 1936.

    >>> bonferroni([0.01, 0.04, 0.5]).round(12).tolist()
    [0.03, 0.12, 1.0]
    """
    p = _pvalues(pvalues)
    return np.minimum(p.shape[0] * p, 1.0)


def no_correction(pvalues) -> np.ndarray:
    """The p-values unchanged (as a float array). Shapes: (m,) -> (m,)."""
    return _pvalues(pvalues).copy()


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D sequence, got shape {p.shape}")
    if not ((p >= 0) & (p <= 1)).all():  # NaN fails both comparisons
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    return p


CORRECTIONS: dict[str, Callable[[Sequence[float]], np.ndarray]] = {"holm": holm, "bonferroni": bonferroni, "none": no_correction}


def correct(pvalues, method: str = "holm") -> np.ndarray:
    """Adjust p-values for multiple comparisons with ``CORRECTIONS[method]``; (m,) -> (m,), clipped to 1.

    >>> correct([0.01, 0.04, 0.03], "bonferroni").round(12).tolist()
    [0.03, 0.12, 0.09]
    """
    return _lookup(CORRECTIONS, method, "correction")(pvalues)


def _lookup(registry: Mapping[str, Callable], name: str, kind: str) -> Callable:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(registry)}")
    return registry[name]


# ---------------------------------------------------------------- bootstrap confidence intervals


def bootstrap_ci(a, *, n: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of mean(a).

    Draw n resamples of Q query indices with replacement (``numpy.random.default_rng(seed)``),
    take each resample's mean m_1..m_n, and return their (1 - level) / 2 and (1 + level) / 2
    quantiles (``numpy.quantile``, linear interpolation). Shapes: a (Q,), Q >= 2; indices are
    drawn in (rows, Q) chunks of at most ``CHUNK_ELEMENTS``. The same (Q, n, seed) draws the
    same indices here and in :func:`paired_bootstrap_ci`, so a system's CI and its difference
    CI come from the same resampled query sets. Efron & Tibshirani 1993, ch. 13.

    >>> bootstrap_ci([0.5, 0.5, 0.5])
    (0.5, 0.5)
    >>> lo, hi = bootstrap_ci([0.0, 1.0] * 50, n=2000); lo < 0.5 < hi
    True
    """
    a = np.asarray(a, dtype=np.float64)
    _check_scores(a)
    return _percentile_interval(_bootstrap_means(a, n, seed), level)


def paired_bootstrap_ci(a, b, *, n: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of mean(a) - mean(b), paired by query.

    Each resample takes the same query indices for a and b, i.e. resamples d = a - b, since
    mean(a[idx]) - mean(b[idx]) = mean(d[idx]); otherwise as :func:`bootstrap_ci`.
    Shapes: a, b (Q,). Efron & Tibshirani 1993, ch. 13.

    >>> paired_bootstrap_ci([0.75, 0.5, 1.0], [0.5, 0.25, 0.75])
    (0.25, 0.25)
    """
    a, b = _paired(a, b)
    return _percentile_interval(_bootstrap_means(a - b, n, seed), level)


def _bootstrap_means(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(Q,) -> (n,): means of n resamples of x with replacement."""
    if n < 1:
        raise ValueError(f"n (bootstrap resamples) must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    q = x.shape[0]
    means = [x[rng.integers(0, q, size=(rows, q))].mean(axis=1) for rows in _chunks(n, q)]  # (rows, Q) -> (rows,)
    return np.concatenate(means)


def _percentile_interval(means: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ---------------------------------------------------------------- the driver


@dataclass(frozen=True)
class Comparison:
    """One system against the baseline on one metric of one dataset, over their shared queries."""

    system: str
    baseline: str
    metric: str
    n_queries: int  # queries both have: the pairs every number below is computed on
    mean: float
    baseline_mean: float
    diff: float  # mean - baseline_mean
    ci: tuple[float, float]  # bootstrap CI of mean
    diff_ci: tuple[float, float]  # paired bootstrap CI of diff
    p: float  # the test's two-sided p-value
    p_adjusted: float  # after the correction across all systems compared with this baseline
    significant: bool  # p_adjusted <= alpha


def paired_scores(per_query: Mapping[str, Mapping[str, float]], system: str, baseline: str, *, strict: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(qids, a, b): the queries both systems scored (sorted), and their (Q,) score vectors.

    strict (default): the two query sets must be equal; comparing over a subset silently would
    change the baseline's mean from one row to the next. Not strict: the intersection. Either
    way, no shared query (or fewer than 2) is a ValueError naming both systems and the counts.

    >>> paired_scores({"x": {"q2": 1.0, "q1": 0.5}, "base": {"q1": 0.0, "q2": 0.5}}, "x", "base")
    (['q1', 'q2'], array([0.5, 1. ]), array([0. , 0.5]))
    """
    for name in (system, baseline):
        if name not in per_query:
            raise ValueError(f"no per-query scores for {name!r}; have: {', '.join(per_query)}")
    sys_q, base_q = per_query[system], per_query[baseline]
    shared = sorted(set(sys_q) & set(base_q))
    counts = f"{system!r} has {len(sys_q)} queries, baseline {baseline!r} has {len(base_q)}, {len(shared)} shared"
    if strict and len(shared) != max(len(sys_q), len(base_q)):
        raise ValueError(f"{counts}: comparisons need the same queries in both results (strict=False compares over the shared ones)")
    if len(shared) < 2:
        raise ValueError(f"{counts}: a paired comparison needs at least 2 shared queries")
    a = np.array([sys_q[q] for q in shared], dtype=np.float64)  # (Q,)
    b = np.array([base_q[q] for q in shared], dtype=np.float64)  # (Q,)
    return shared, a, b


def compare(
    per_query: Mapping[str, Mapping[str, float]],
    baseline: str,
    *,
    metric: str,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    n: int = 10_000,
    n_bootstrap: int | None = None,
    seed: int = 0,
    level: float = 0.95,
    strict: bool = True,
) -> list[Comparison]:
    """Compare every other system in ``per_query`` (system -> {qid: score}) with ``baseline``.

    One metric of one dataset: for each system (in ``per_query`` order) pair its queries with the
    baseline's (:func:`paired_scores`), run ``TESTS[test]`` (``n`` and ``seed`` go to the
    resampling tests), bootstrap the CIs of its mean and of the difference (``n_bootstrap``
    resamples, default ``n``; ``seed``, ``level``), then apply ``CORRECTIONS[correction]`` across
    all these systems' p-values; ``significant`` is ``p_adjusted <= alpha``. Every system's
    resampling uses the same seed. A family wider than one dataset: :func:`adjust` the rows of
    several calls together.

    >>> rows = compare({"bm25": {"q1": 0.0, "q2": 0.5, "q3": 1.0}, "x": {"q1": 0.0, "q2": 0.5, "q3": 1.0}}, "bm25", metric="ndcg@10", n=100)
    >>> [(c.system, c.n_queries, c.diff, c.p, c.significant) for c in rows]
    [('x', 3, 0.0, 1.0, False)]
    """
    test_fn = _lookup(TESTS, test, "test")
    _lookup(CORRECTIONS, correction, "correction")
    if baseline not in per_query:
        raise ValueError(f"no per-query scores for baseline {baseline!r}; have: {', '.join(per_query)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    resampling = {"n": n, "seed": seed} if test in RESAMPLING_TESTS else {}
    boot = {"n": n if n_bootstrap is None else n_bootstrap, "seed": seed, "level": level}
    rows = []
    for system in (s for s in per_query if s != baseline):
        _, a, b = paired_scores(per_query, system, baseline, strict=strict)
        rows.append(
            {
                "system": system,
                "baseline": baseline,
                "metric": metric,
                "n_queries": int(a.shape[0]),
                "mean": float(a.mean()),
                "baseline_mean": float(b.mean()),
                "diff": float(a.mean() - b.mean()),
                "ci": bootstrap_ci(a, **boot),
                "diff_ci": paired_bootstrap_ci(a, b, **boot),
                "p": test_fn(a, b, **resampling),
            }
        )
    adjusted = correct([r["p"] for r in rows], correction)
    return [Comparison(**r, p_adjusted=float(p), significant=bool(p <= alpha)) for r, p in zip(rows, adjusted)]


def adjust(comparisons: Sequence[Comparison], correction: str = "holm", alpha: float = 0.05) -> list[Comparison]:
    """The same comparisons with ``p_adjusted`` and ``significant`` recomputed over all of them as one family.

    :func:`compare` corrects across the systems of one dataset; a table with several datasets
    tests every (system, dataset) cell against the baseline, and that whole table is the family
    whose error rate ``correction`` controls. Order is kept. Shapes: m comparisons -> m.

    >>> rows = [Comparison("x", "b", "m", 30, 0.6, 0.5, 0.1, (0.5, 0.7), (0.0, 0.2), p, p, p <= 0.05) for p in (0.01, 0.04, 0.03)]
    >>> [(c.p_adjusted, c.significant) for c in adjust(rows, "holm")]
    [(0.03, True), (0.06, False), (0.06, False)]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    adjusted = correct([c.p for c in comparisons], correction)
    return [dataclasses.replace(c, p_adjusted=float(p), significant=bool(p <= alpha)) for c, p in zip(comparisons, adjusted)]
