"""Significance tests, corrections and bootstrap CIs on hand-made per-query score vectors.

References: scipy (t-test, Wilcoxon) to 1e-12; the randomization test against its exact p-value,
enumerated over all 2^8 sign patterns; ranx's Fisher test within Monte Carlo error (slow: ranx's
import and numba compiles take 15 s to 2 min on a loaded 2-core box; ranx's p is not reproducible
run to run, its numba threads share the seed); Holm and Bonferroni by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from benchmarks import significance as sig
from benchmarks.significance import (
    CORRECTIONS,
    TESTS,
    Comparison,
    bonferroni,
    bootstrap_ci,
    compare,
    correct,
    holm,
    paired_bootstrap_ci,
    paired_scores,
    paired_t,
    randomization,
    wilcoxon,
)

N = 10_000  # permutations / resamples, the product default


def mc_tolerance(p: float, n: int = N) -> float:
    """4 Monte Carlo standard errors of a p-value estimated from n draws, plus the 1/n offset of the +1 convention."""
    return 4 * math.sqrt(p * (1 - p) / n) + 1 / n


def exact_randomization_p(a, b) -> float:
    """Every one of the 2^Q sign patterns (Q <= ~16): #{|sum s_i d_i| >= |sum d_i|} / 2^Q, with the module's tie tolerance."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.shape[0])))  # (2^Q, Q)
    threshold = abs(d.sum()) - sig.TIE_RTOL * np.abs(d).sum()
    return float((np.abs(signs @ d) >= threshold).mean())


# Hand-made pairs (system, baseline): graded scores, 0/1 scores with ties, a query both miss.
PAIRS = {
    "graded": ([0.61, 0.32, 0.88, 0.45, 0.70, 0.12, 0.93, 0.55], [0.50, 0.35, 0.80, 0.30, 0.71, 0.10, 0.85, 0.60]),
    "binary_ties": ([1, 0, 1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 1, 0, 1]),
    "tied_differences": ([0.5, 0.75, 0.25, 1.0, 0.5, 0.0, 0.75, 0.5], [0.25, 0.5, 0.25, 0.75, 0.75, 0.0, 0.5, 0.25]),
}


# ---------------------------------------------------------------- t-test


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_paired_t_equals_scipy(name):
    a, b = PAIRS[name]
    assert abs(paired_t(a, b) - scipy.stats.ttest_rel(a, b).pvalue) <= 1e-12


def test_paired_t_equals_scipy_on_random_vectors():
    rng = np.random.default_rng(7)
    for q in (2, 5, 300):
        a, b = rng.random(q), rng.random(q)
        assert abs(paired_t(a, b) - scipy.stats.ttest_rel(a, b).pvalue) <= 1e-12


def test_paired_t_known_value():
    # d = [0.1, 0.1, 0.3, 0.4]: mean 0.225, sd 0.15, t = 0.225 / (0.15 / 2) = 3, df 3 -> p = 2 P(T_3 >= 3)
    assert paired_t([0.2, 0.4, 0.6, 0.9], [0.1, 0.3, 0.3, 0.5]) == pytest.approx(2 * scipy.stats.t.sf(3.0, 3), abs=1e-12)


@pytest.mark.parametrize("test", sorted(TESTS))
def test_identical_vectors_give_p_one(test):
    a = [0.5, 0.25, 0.0, 1.0, 0.75]
    assert TESTS[test](a, list(a)) == 1.0


@pytest.mark.parametrize("test", sorted(TESTS))
def test_bad_inputs_are_rejected(test):
    with pytest.raises(ValueError, match="same length"):
        TESTS[test]([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        TESTS[test]([0.1], [0.2])
    with pytest.raises(ValueError, match="finite"):
        TESTS[test]([0.1, float("nan")], [0.2, 0.3])


# ---------------------------------------------------------------- randomization


def test_randomization_exact_p_by_hand():
    # d_i = 1 for all 8 queries: only all-plus and all-minus reach |sum| = 8, so the exact p = 2 / 256.
    a, b = [1.0] * 8, [0.0] * 8
    assert exact_randomization_p(a, b) == 2 / 256
    assert abs(randomization(a, b) - 2 / 256) <= mc_tolerance(2 / 256)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_randomization_within_monte_carlo_error_of_the_exact_p(name):
    a, b = PAIRS[name]
    exact = exact_randomization_p(a, b)
    assert 0.01 < exact < 0.99  # a case where the test has something to estimate
    assert abs(randomization(a, b) - exact) <= mc_tolerance(exact)


def test_randomization_is_seeded():
    a, b = PAIRS["graded"]
    assert randomization(a, b, seed=3) == randomization(a, b, seed=3)
    assert randomization(a, b, n=999) != randomization(a, b, n=999, seed=1)  # 1000 * p differs: (count + 1) / 1000


def test_randomization_chunks_bound_memory(monkeypatch):
    assert sig._chunks(10_000, 3_000) == [1398] * 7 + [214]  # 2^22 // 3000 rows per chunk
    assert all(rows * 3_000 <= sig.CHUNK_ELEMENTS for rows in sig._chunks(10_000, 3_000))
    monkeypatch.setattr(sig, "CHUNK_ELEMENTS", 8 * 37)  # 37 permutations per chunk for 8 queries
    assert sig._chunks(100, 8) == [37, 37, 26]
    a, b = PAIRS["graded"]
    exact = exact_randomization_p(a, b)
    assert abs(randomization(a, b) - exact) <= mc_tolerance(exact)


# ---------------------------------------------------------------- Wilcoxon


def test_wilcoxon_known_values():
    # All 4 differences positive: W+ takes its maximum, 2 of the 2^4 equally likely sign patterns -> p = 2 / 16.
    assert wilcoxon([0.2, 0.4, 0.6, 0.9], [0.1, 0.3, 0.5, 0.5]) == 0.125
    # d = [0.1, 0.2, 0.3, 0.4, -0.15]: ranks 1, 3, 4, 5 and 2; W- = 2, P(W <= 2 or W >= 13) = 6 / 32.
    assert wilcoxon([0.6, 0.7, 0.8, 0.9, 0.35], [0.5, 0.5, 0.5, 0.5, 0.5]) == pytest.approx(6 / 32, abs=1e-12)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_wilcoxon_equals_scipy_and_drops_zero_differences(name):
    a, b = (np.asarray(x, dtype=float) for x in PAIRS[name])
    p = wilcoxon(a, b)
    assert p == pytest.approx(scipy.stats.wilcoxon(a, b, zero_method="wilcox").pvalue, abs=1e-12)
    keep = a != b
    if not keep.all():  # the zero-difference queries do not change the p-value
        assert p == pytest.approx(wilcoxon(a[keep], b[keep]), abs=1e-12)


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),  # the docstring's worked example
        ([0.001, 0.2, 0.5, 0.01], [0.004, 0.4, 0.5, 0.03]),  # 4 x .001, 3 x .01, 2 x .2, 1 x .5
        ([0.04, 0.045], [0.08, 0.08]),  # 1 x .045 < 2 x .04: the running max keeps it monotone
        ([0.6, 0.7], [1.0, 1.0]),  # clipped
        ([0.02, 0.02, 0.5], [0.06, 0.06, 0.5]),  # tied p-values get the same adjusted value
        ([0.3], [0.3]),
        ([], []),
    ],
)
def test_holm_hand_made(p, expected):
    assert holm(p) == pytest.approx(expected, abs=1e-12)
    assert correct(p) == pytest.approx(expected, abs=1e-12)  # Holm is the default


def test_bonferroni_and_none_hand_made():
    assert bonferroni([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.12, 0.09], abs=1e-12)
    assert correct([0.6, 0.2], "bonferroni") == pytest.approx([1.0, 0.4], abs=1e-12)
    assert correct([0.01, 0.04, 0.03], "none").tolist() == [0.01, 0.04, 0.03]


def test_holm_never_exceeds_bonferroni_and_never_goes_below_raw():
    p = np.random.default_rng(0).random(20) ** 3
    assert (p <= holm(p) + 1e-15).all() and (holm(p) <= bonferroni(p) + 1e-15).all()


def test_registries_name_the_valid_choices():
    assert list(CORRECTIONS) == ["holm", "bonferroni", "none"] and list(TESTS) == ["t", "randomization", "wilcoxon"]
    with pytest.raises(ValueError, match="valid: holm, bonferroni, none"):
        correct([0.1], "fdr")
    with pytest.raises(ValueError, match="valid: t, randomization, wilcoxon"):
        compare({"a": {"q": 1.0}, "b": {"q": 0.0}}, "b", metric="m", test="sign")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        correct([0.1, 1.5])


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_reproducible_per_seed():
    a = np.random.default_rng(1).random(300)
    assert bootstrap_ci(a, seed=5) == bootstrap_ci(a, seed=5)
    assert bootstrap_ci(a, seed=5) != bootstrap_ci(a, seed=6)
    b = np.random.default_rng(2).random(300)
    assert paired_bootstrap_ci(a, b, n=2_000, seed=5) == paired_bootstrap_ci(a, b, n=2_000, seed=5)
    assert paired_bootstrap_ci(a, b, n=2_000, seed=5) != paired_bootstrap_ci(a, b, n=2_000, seed=6)


def test_bootstrap_ci_hand_made():
    assert bootstrap_ci([0.5, 0.5, 0.5, 0.5]) == (0.5, 0.5)  # every resample has mean 0.5
    assert paired_bootstrap_ci([0.75, 0.5, 1.0], [0.5, 0.25, 0.75]) == (0.25, 0.25)  # d = 0.25 everywhere
    a = np.random.default_rng(3).random(200)
    lo, hi = bootstrap_ci(a)
    lo90, hi90 = bootstrap_ci(a, level=0.9)
    assert lo < lo90 < a.mean() < hi90 < hi


def test_paired_bootstrap_resamples_the_same_queries():
    rng = np.random.default_rng(4)
    a, b = rng.random(100), rng.random(100)
    assert paired_bootstrap_ci(a, np.zeros(100)) == bootstrap_ci(a)  # same indices: mean(a[idx]) - 0
    assert paired_bootstrap_ci(a, b) == bootstrap_ci(a - b)  # mean(a[idx]) - mean(b[idx]) = mean(d[idx])


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    a = np.random.default_rng(5).random(200)
    ref = scipy.stats.bootstrap((a,), np.mean, n_resamples=N, method="percentile", rng=np.random.default_rng(0)).confidence_interval
    half_width = (ref.high - ref.low) / 2
    lo, hi = bootstrap_ci(a)
    assert abs(lo - ref.low) < 0.05 * half_width and abs(hi - ref.high) < 0.05 * half_width  # Monte Carlo only


# ---------------------------------------------------------------- pairing queries


def test_systems_without_shared_queries_are_an_error():
    per_query = {"bm25": {"q1": 0.5, "q2": 0.1}, "minilm": {"q3": 0.7, "q4": 0.2}}
    with pytest.raises(ValueError, match=r"'minilm' has 2 queries, baseline 'bm25' has 2, 0 shared"):
        compare(per_query, "bm25", metric="ndcg@10")
    with pytest.raises(ValueError, match="0 shared: a paired comparison needs at least 2"):
        compare(per_query, "bm25", metric="ndcg@10", strict=False)


def test_different_query_sets_are_an_error_unless_not_strict():
    per_query = {"bm25": {"q1": 0.5, "q2": 0.1, "q3": 0.3}, "minilm": {"q2": 0.7, "q3": 0.2, "q4": 0.9}}
    with pytest.raises(ValueError, match=r"'minilm' has 3 queries, baseline 'bm25' has 3, 2 shared.*strict=False"):
        paired_scores(per_query, "minilm", "bm25")
    qids, a, b = paired_scores(per_query, "minilm", "bm25", strict=False)
    assert qids == ["q2", "q3"] and a.tolist() == [0.7, 0.2] and b.tolist() == [0.1, 0.3]
    (row,) = compare(per_query, "bm25", metric="ndcg@10", strict=False)
    assert row.n_queries == 2 and row.baseline_mean == pytest.approx(0.2)


def test_unknown_baseline_lists_the_systems():
    with pytest.raises(ValueError, match="'BM25'; have: bm25, minilm"):
        compare({"bm25": {"q": 0.1}, "minilm": {"q": 0.2}}, "BM25", metric="ndcg@10")


# ---------------------------------------------------------------- compare, end to end


def _systems() -> dict[str, dict[str, float]]:
    base = [round(0.1 * (i % 7) + 0.05 * (i % 3), 2) for i in range(30)]  # (30,) in [0, 0.7]
    bump = [0.2 + 0.05 * (i % 5) for i in range(30)]  # (30,) in [0.2, 0.4], mean 0.3: better on every query
    qids = [f"q{i}" for i in range(30)]
    return {
        "bm25": dict(zip(qids, base)),
        "better": dict(zip(reversed(qids), [base[i] + bump[i] for i in reversed(range(30))])),  # another key order
        "same": dict(zip(qids, base)),
    }


@pytest.mark.parametrize("test", sorted(TESTS))
def test_compare_end_to_end(test):
    per_query = _systems()
    rows = compare(per_query, "bm25", metric="ndcg@10", test=test, n=2_000)
    assert [r.system for r in rows] == ["better", "same"]  # per_query order, baseline left out
    better, same = rows
    assert isinstance(better, Comparison) and better.baseline == "bm25" and better.metric == "ndcg@10"
    assert better.n_queries == same.n_queries == 30
    base = np.array(list(per_query["bm25"].values()))
    assert better.baseline_mean == pytest.approx(base.mean()) and better.diff == pytest.approx(0.3)
    assert better.ci[0] < better.mean < better.ci[1] and better.diff_ci[0] < better.diff < better.diff_ci[1]
    assert better.significant and better.p < 1e-3
    assert (same.p, same.p_adjusted, same.significant, same.diff, same.diff_ci) == (1.0, 1.0, False, 0.0, (0.0, 0.0))
    assert [r.p_adjusted for r in rows] == pytest.approx(holm([better.p, same.p]).tolist(), abs=0)


def test_compare_correction_and_alpha_change_significance():
    # One system barely better: raw p just under 0.05; with a second (null) system Holm doubles it.
    rng = np.random.default_rng(11)
    base = rng.random(40)
    qids = [f"q{i}" for i in range(40)]
    per_query = {"bm25": dict(zip(qids, base)), "x": dict(zip(qids, base + 0.08 + rng.normal(0, 0.25, 40))), "same": dict(zip(qids, base))}
    x_raw = compare(per_query, "bm25", metric="m", correction="none")[0]
    x_holm = compare(per_query, "bm25", metric="m")[0]
    assert x_holm.p == x_raw.p and x_holm.p_adjusted == pytest.approx(min(1.0, 2 * x_raw.p))
    alpha = (x_raw.p + x_holm.p_adjusted) / 2  # between the raw and the corrected p
    assert compare(per_query, "bm25", metric="m", correction="none", alpha=alpha)[0].significant
    assert not compare(per_query, "bm25", metric="m", alpha=alpha)[0].significant


def test_compare_is_reproducible():
    per_query = _systems()
    kw = {"metric": "ndcg@10", "test": "randomization", "n": 1_000, "seed": 3}
    assert compare(per_query, "bm25", **kw) == compare(per_query, "bm25", **kw)


# ---------------------------------------------------------------- ranx, the reference implementation


RANX_CASES = {  # (system, baseline) per-query scores; p from ~0.5 down to ~0.02
    "binary_60": (
        [1, 1, 0, 1, 1, 0, 1, 1, 1, 0] * 6,
        [1, 0, 0, 1, 0, 0, 1, 1, 0, 1] * 6,
    ),
    "graded_100": None,  # filled below from a seeded generator
    "null_100": None,
    "ties_40": (
        [0.5, 0.25, 0.75, 0.0, 1.0, 0.5, 0.25, 0.5] * 5,
        [0.25, 0.25, 0.5, 0.25, 1.0, 0.5, 0.5, 0.25] * 5,
    ),
}
_rng = np.random.default_rng(2024)
_base = _rng.random(100)
RANX_CASES["graded_100"] = (np.clip(_base + 0.05 + _rng.normal(0, 0.2, 100), 0, 1), _base)
RANX_CASES["null_100"] = (np.clip(_base + _rng.normal(0, 0.2, 100), 0, 1), _base)


def ranx_tolerance(p: float, n: int = N) -> float:
    """Two independent Monte Carlo estimates (ranx's and ours) differ by sd sqrt(2 p (1 - p) / n): allow 4 sd,
    plus 1/n for the conventions ((count + 1) / (n + 1) here, count / n in ranx)."""
    return 4 * math.sqrt(2 * p * (1 - p) / n) + 1 / n


@pytest.mark.slow  # ranx: ~5 s import, numba compiles (~2 min uncached, ~15 s for the 5 tests cached) on a loaded 2-core box
@pytest.mark.parametrize("name", sorted(RANX_CASES))
def test_randomization_agrees_with_ranx_fisher(name):
    fisher = pytest.importorskip("ranx.statistical_tests").fisher_randomization_test
    a, b = (np.asarray(x, dtype=np.float64) for x in RANX_CASES[name])
    p_ranx, _ = fisher(b, a, N, 0.05, 42)  # (control, treatment, n_permutations, max_p, random_seed)
    p_ours = randomization(a, b, n=N, seed=0)
    print(f"{name}: ours {p_ours:.4f}  ranx {p_ranx:.4f}  |diff| {abs(p_ours - p_ranx):.4f}  tol {ranx_tolerance(p_ranx):.4f}")
    assert abs(p_ours - p_ranx) <= ranx_tolerance(p_ranx)


@pytest.mark.slow  # as above
def test_randomization_agrees_with_ranx_compare_on_runs():
    """ranx's own path: Qrels and Runs whose per-query ndcg@1 is the 0/1 vector (one document per query)."""
    ranx = pytest.importorskip("ranx")
    a, b = RANX_CASES["binary_60"]
    qids = [f"q{i}" for i in range(len(a))]
    qrels = ranx.Qrels({q: {"rel": 1} for q in qids})

    def run(scores, name):
        return ranx.Run({q: {"rel" if s else "other": 1.0} for q, s in zip(qids, scores)}, name=name)

    report = ranx.compare(qrels, [run(b, "base"), run(a, "sys")], ["ndcg@1"], stat_test="fisher", n_permutations=N, random_seed=42)
    assert report.results["sys"]["ndcg@1"] == pytest.approx(np.mean(a)) and report.results["base"]["ndcg@1"] == pytest.approx(np.mean(b))
    p_ranx = report.comparisons["base", "sys"]["ndcg@1"]["p_value"]
    p_ours = randomization(np.asarray(a, float), np.asarray(b, float))
    print(f"ranx.compare binary_60: ours {p_ours:.4f}  ranx {p_ranx:.4f}")
    assert abs(p_ours - p_ranx) <= ranx_tolerance(p_ranx)
