"""Rank intervals and tiers on hand-made per-query scores with a known answer (benchmarks/ranks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import ranks
from benchmarks.significance import TESTS

Q = 200


def five_models(seed: int = 0, q: int = Q) -> dict[str, dict[str, float]]:
    """far: far ahead; twin-a and twin-b: identical; mid and low: drawn alike (independent noise), below the twins."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.5, q)
    twin = np.clip(base + 0.10 + rng.normal(0, 0.05, q), 0, 1)
    scores = {"far": np.clip(base + 0.45, 0, 1), "twin-a": twin, "twin-b": twin.copy(),
              "mid": np.clip(base + rng.normal(0, 0.05, q), 0, 1), "low": np.clip(base + rng.normal(0, 0.05, q), 0, 1)}
    return {s: {f"q{i}": float(v) for i, v in enumerate(x)} for s, x in scores.items()}


def test_the_far_ahead_model_stands_alone_and_the_identical_pair_ties():
    per_query = five_models()
    rows = {r.system: r for r in ranks.standings(per_query, n=1000, seed=0)}
    assert rows["far"].tier == 1 and [s for s, r in rows.items() if r.tier == 1] == ["far"]
    assert rows["far"].rank == 1 and rows["far"].interval == (1, 1)
    a, b = rows["twin-a"], rows["twin-b"]
    assert (a.interval, a.rank, a.tier, a.mean) == (b.interval, b.rank, b.tier, b.mean)  # identical scores: identical standing
    assert a.rank == 2 and a.interval == (2, 2) and a.tier == 2  # equal means share rank 2; no resample separates them
    assert rows["mid"].tier == rows["low"].tier == 3  # the pair drawn alike is not separated either
    assert {rows["mid"].interval, rows["low"].interval} == {(4, 5)}  # and both can honestly claim 4th or 5th


def test_the_same_settings_give_the_same_answer_and_another_seed_may_not():
    per_query = five_models()
    assert ranks.standings(per_query, n=500, seed=3) == ranks.standings(per_query, n=500, seed=3)
    assert ranks.rank_intervals(per_query, n=500, seed=1)["far"] == (1, 1)


def test_a_mean_over_datasets_resamples_within_each_dataset():
    by_dataset = {"d1": five_models(1, 150), "d2": five_models(2, 80)}
    rows = {r.system: r for r in ranks.standings_stratified(by_dataset, n=500, seed=0)}
    assert rows["far"].tier == 1 and rows["far"].interval == (1, 1)
    assert rows["twin-a"].interval == rows["twin-b"].interval and rows["twin-a"].tier == rows["twin-b"].tier
    means = {s: np.mean([np.mean(list(d[s].values())) for d in by_dataset.values()]) for s in rows}
    assert all(abs(rows[s].mean - means[s]) < 1e-12 for s in rows)  # the mean over datasets weighs each dataset once


def test_ranks_need_the_same_queries():
    with pytest.raises(ValueError, match="other queries"):
        ranks.rank_intervals({"a": {"q1": 1.0, "q2": 0.5}, "b": {"q1": 1.0, "q3": 0.5}})


@pytest.mark.slow  # ranx's import is slow (numba)
def test_the_tier_tests_are_ranx_paired_t_tests():
    from ranx.statistical_tests.paired_student_t_test import paired_student_t_test

    per_query = five_models()
    x = {s: np.array([v[f"q{i}"] for i in range(Q)]) for s, v in per_query.items()}
    for other in ("twin-a", "mid", "low"):
        ours = TESTS["t"](x["far"], x[other])
        theirs, _ = paired_student_t_test(x[other], x["far"])
        assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-300)
