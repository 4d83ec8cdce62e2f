"""Which systems are really apart: bootstrap rank intervals and tiers.

Pure functions over per-query scores, no I/O. ``per_query`` maps each system to ``{qid: score}``
for one metric of one dataset; every system must have the same queries (a paired comparison).
For a mean over several datasets, ``by_dataset`` maps each dataset to such a mapping.

* :func:`rank_intervals`: draw ``n`` resamples of the queries with replacement, the same indices
  for every system (paired); rank the systems by their resampled mean (1 = best; systems with equal
  means share the best rank of their group, so two identical systems always get identical
  intervals); a system's interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of its
  ranks (``numpy.quantile``, ``method="lower"`` / ``"higher"``: whole ranks). For the mean over
  datasets the resampling is stratified: each resample draws every dataset's queries from that
  dataset (Efron & Tibshirani 1993, ch. 6; the stratified bootstrap of per-dataset means).
* :func:`tiers`: tier 1 is the best system (highest mean) and every system whose difference from
  it is not significant after the correction over those comparisons; tier 2 is found the same way
  among the rest, and so on. One dataset uses the chosen paired test
  (:data:`benchmarks.significance.TESTS`); a mean over datasets uses the stratified paired bootstrap's
  two-sided percentile p-value, ``2 min(P(D <= 0), P(D >= 0))`` with D the resampled difference.

The same inputs, ``n`` and ``seed`` always give the same answer. MTEB's users ask for this
(mteb#5208); a paired bootstrap over queries is the usual way to get it (Sakai, "Statistical
Reform in Information Retrieval?", SIGIR Forum 2014).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.significance import CHUNK_ELEMENTS, RESAMPLING_TESTS, TESTS, correct

Scores = Mapping[str, Mapping[str, float]]  # system -> {qid: score}


@dataclass(frozen=True)
class Standing:
    """One system's place in one table column (a dataset, or the mean over datasets)."""

    system: str
    mean: float
    rank: int  # by the observed mean (1 = best; equal means share a rank)
    interval: tuple[int, int]  # 95% bootstrap interval of the rank
    tier: int  # 1 = not significantly below the best
    p_vs_tier_best: float  # adjusted p-value against the best of its tier (1.0 for that best itself)


def _matrix(per_query: Scores) -> tuple[list[str], np.ndarray]:
    """Systems (in the given order) and their scores ``(S, Q)`` over the same queries (sorted ids)."""
    systems = list(per_query)
    if len(systems) < 1:
        raise ValueError("no systems")
    qids = sorted(per_query[systems[0]])
    for s in systems:
        if sorted(per_query[s]) != qids:
            raise ValueError(f"{s!r} has other queries than {systems[0]!r} ({len(per_query[s])} vs {len(qids)}): ranks need the same queries")
    if len(qids) < 2:
        raise ValueError(f"need at least 2 queries, got {len(qids)}")
    return systems, np.array([[per_query[s][q] for q in qids] for s in systems], dtype=np.float64)  # (S, Q)


def _min_ranks(means: np.ndarray) -> np.ndarray:
    """``(R, S)`` means -> ``(R, S)`` ranks, 1 = highest; equal means share the best rank of their group ("1224" ranking).

    >>> _min_ranks(np.array([[0.5, 0.7, 0.5, 0.1]])).tolist()
    [[2, 1, 2, 4]]
    """
    return (means[:, None, :] > means[:, :, None]).sum(axis=2) + 1  # count of systems strictly better, + 1


def _resampled_means(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(S, Q)`` -> ``(n, S)``: every system's mean over the same n resamples of the Q queries."""
    S, Q = scores.shape
    rows = max(1, CHUNK_ELEMENTS // (Q * max(1, S)))
    out = []
    for start in range(0, n, rows):
        idx = rng.integers(0, Q, size=(min(rows, n - start), Q))  # (r, Q)
        out.append(scores[:, idx].mean(axis=2).T)  # (S, r, Q) -> (r, S)
    return np.concatenate(out)


def stratified_means(by_dataset: Mapping[str, Scores], n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Systems, their observed mean over datasets ``(S,)`` and ``(n, S)`` resampled means over datasets.

    Datasets are resampled in sorted order, each from its own queries, with one generator seeded ``seed``.
    Every dataset must have the same systems.
    """
    names = sorted(by_dataset)
    systems = list(by_dataset[names[0]])
    total_obs, total_boot = np.zeros(len(systems)), np.zeros((n, len(systems)))
    rng = np.random.default_rng(seed)
    for name in names:
        if list(by_dataset[name]) != systems and set(by_dataset[name]) != set(systems):
            raise ValueError(f"dataset {name!r} has other systems than {names[0]!r}: a mean over datasets needs them all")
        order, scores = _matrix({s: by_dataset[name][s] for s in systems})
        total_obs += scores.mean(axis=1)
        total_boot += _resampled_means(scores, n, rng)
    return systems, total_obs / len(names), total_boot / len(names)


def rank_intervals(per_query: Scores, *, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[int, int]]:
    """``{system: (lo, hi)}``: the ``level`` bootstrap interval of each system's rank on one dataset (module docstring).

    >>> rank_intervals({"a": {"q1": 1.0, "q2": 0.9}, "b": {"q1": 0.0, "q2": 0.1}}, n=50)
    {'a': (1, 1), 'b': (2, 2)}
    """
    systems, scores = _matrix(per_query)
    return _intervals(systems, _resampled_means(scores, n, np.random.default_rng(seed)), level)


def rank_intervals_stratified(by_dataset: Mapping[str, Scores], *, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[int, int]]:
    """As :func:`rank_intervals`, for the mean over datasets, each dataset's queries resampled within it."""
    systems, _, boot = stratified_means(by_dataset, n, seed)
    return _intervals(systems, boot, level)


def _intervals(systems: list[str], boot: np.ndarray, level: float) -> dict[str, tuple[int, int]]:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    ranks = _min_ranks(boot)  # (n, S)
    lo = np.quantile(ranks, (1 - level) / 2, axis=0, method="lower")
    hi = np.quantile(ranks, (1 + level) / 2, axis=0, method="higher")
    return {s: (int(a), int(b)) for s, a, b in zip(systems, lo, hi)}


def _tier_loop(systems: list[str], means: np.ndarray, pvalue, correction: str, alpha: float) -> tuple[dict[str, int], dict[str, float]]:
    """Tiers by repeated "best of the rest, and all not significantly below it"; ``pvalue(i, j)``: two-sided p of i vs j."""
    tier, p_of = {}, {}
    left = list(range(len(systems)))
    t = 0
    while left:
        t += 1
        best = max(left, key=lambda i: (means[i], -i))  # highest mean; equal means: the first given
        others = [i for i in left if i != best]
        adjusted = correct([pvalue(best, i) for i in others], correction) if others else []
        members = [best] + [i for i, p in zip(others, adjusted) if p > alpha]
        tier[systems[best]], p_of[systems[best]] = t, 1.0
        for i, p in zip(others, adjusted):
            if p > alpha:
                tier[systems[i]], p_of[systems[i]] = t, float(p)
        left = [i for i in left if i not in members]
    return tier, p_of


def tiers(per_query: Scores, *, test: str = "t", correction: str = "holm", alpha: float = 0.05, n: int = 10_000, seed: int = 0) -> dict[str, tuple[int, float]]:
    """``{system: (tier, adjusted p against its tier's best)}`` on one dataset, with the paired ``test`` (module docstring).

    >>> tiers({"a": {"q1": 1.0, "q2": 0.9, "q3": 1.0}, "b": {"q1": 0.0, "q2": 0.1, "q3": 0.0}})
    {'a': (1, 1.0), 'b': (2, 1.0)}
    """
    systems, scores = _matrix(per_query)
    fn = TESTS[test]
    extra = {"n": n, "seed": seed} if test in RESAMPLING_TESTS else {}
    tier, p = _tier_loop(systems, scores.mean(axis=1), lambda i, j: fn(scores[i], scores[j], **extra), correction, alpha)
    return {s: (tier[s], p[s]) for s in systems}


def tiers_stratified(by_dataset: Mapping[str, Scores], *, correction: str = "holm", alpha: float = 0.05, n: int = 1000, seed: int = 0) -> dict[str, tuple[int, float]]:
    """As :func:`tiers`, for the mean over datasets: the stratified paired bootstrap p-value of each difference."""
    systems, obs, boot = stratified_means(by_dataset, n, seed)

    def pvalue(i: int, j: int) -> float:
        d = boot[:, i] - boot[:, j]  # (n,)
        if np.all(d == 0):
            return 1.0
        return float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))

    tier, p = _tier_loop(systems, obs, pvalue, correction, alpha)
    return {s: (tier[s], p[s]) for s in systems}


def standings(per_query: Scores, *, test: str = "t", correction: str = "holm", alpha: float = 0.05, n: int = 1000, seed: int = 0,
              permutations: int = 10_000, level: float = 0.95) -> list[Standing]:
    """Every system's mean, rank, rank interval and tier on one dataset, best first (ties in the given order)."""
    systems, scores = _matrix(per_query)
    means = scores.mean(axis=1)
    ranks = _min_ranks(means[None, :])[0]
    iv = rank_intervals(per_query, n=n, seed=seed, level=level)
    tr = tiers(per_query, test=test, correction=correction, alpha=alpha, n=permutations, seed=seed)
    return _sorted([Standing(s, float(m), int(r), iv[s], *tr[s]) for s, m, r in zip(systems, means, ranks)])


def standings_stratified(by_dataset: Mapping[str, Scores], *, correction: str = "holm", alpha: float = 0.05, n: int = 1000, seed: int = 0,
                         level: float = 0.95) -> list[Standing]:
    """As :func:`standings`, for the mean over datasets (stratified bootstrap)."""
    systems, obs, _ = stratified_means(by_dataset, n, seed)
    ranks = _min_ranks(obs[None, :])[0]
    iv = rank_intervals_stratified(by_dataset, n=n, seed=seed, level=level)
    tr = tiers_stratified(by_dataset, correction=correction, alpha=alpha, n=n, seed=seed)
    return _sorted([Standing(s, float(m), int(r), iv[s], *tr[s]) for s, m, r in zip(systems, obs, ranks)])


def _sorted(rows: Sequence[Standing]) -> list[Standing]:
    return sorted(rows, key=lambda r: r.rank)  # stable: equal ranks keep the given order
