"""Hard-negative selection on hand-made rankings; the mined pool cache."""

from __future__ import annotations

import pytest

from encoders.training import mining
from encoders.training.mining import MiningConfig, mine_pool, negatives_for_pairs, screen_candidates, select_negatives

# rank:      1          2          3          4          5          6          7          8
HITS = [("p1", 0.90), ("x", 0.95), ("p2", 0.85), ("a", 0.84), ("b", 0.80), ("c", 0.70), ("d", 0.60), ("e", 0.50)]
OPEN = MiningConfig(rank_start=1, rank_end=8, count=10, margin=None, max_ratio=None)


def test_positives_never_negatives():
    got = select_negatives(HITS, {"p1", "p2"}, None, OPEN)
    assert got == ["x", "a", "b", "c", "d", "e"]
    assert not {"p1", "p2"} & set(got)


def test_rank_window_is_inclusive_and_counts_positives():
    cfg = MiningConfig(rank_start=3, rank_end=5, count=10, margin=None, max_ratio=None, pool_extra=0)
    # ranks 3..5 are p2 (a positive, skipped), a, b; ranks past 5 fill up afterwards
    assert select_negatives(HITS, {"p1", "p2"}, None, cfg) == ["a", "b", "c", "d", "e"]
    assert select_negatives(HITS, {"p1", "p2"}, None, MiningConfig(rank_start=3, rank_end=5, count=2, margin=None, max_ratio=None)) == ["a", "b"]


def test_absolute_margin_respected():
    cfg = MiningConfig(rank_start=1, rank_end=8, count=10, margin=0.15, max_ratio=None)
    got = select_negatives(HITS, {"p1", "p2"}, 0.9, cfg)
    assert got == ["c", "d", "e"]  # only scores <= 0.9 - 0.15
    assert all(s <= 0.9 - 0.15 for d, s in HITS if d in got)
    # margin 0: anything scoring above the positive is dropped ("x" at 0.95), ties kept
    assert select_negatives(HITS, {"p1"}, 0.85, MiningConfig(rank_start=1, rank_end=8, count=10, margin=0.0, max_ratio=None)) == ["p2", "a", "b", "c", "d", "e"]


def test_relative_margin_respected():
    cfg = MiningConfig(rank_start=1, rank_end=8, count=10, margin=None, max_ratio=0.9)
    got = select_negatives(HITS, {"p1", "p2"}, 0.9, cfg)  # keep scores <= 0.81
    assert got == ["b", "c", "d", "e"]


def test_both_filters_combine():
    both = MiningConfig(rank_start=1, rank_end=8, count=10, margin=0.25, max_ratio=0.9)
    assert select_negatives(HITS, {"p1", "p2"}, 0.9, both) == ["d", "e"]  # <= 0.65 and <= 0.81


def test_count_and_random_pick_is_seeded_and_in_window():
    cfg = MiningConfig(rank_start=2, rank_end=7, count=3, margin=None, max_ratio=None, pick="random")
    a = select_negatives(HITS, {"p1", "p2"}, None, cfg, seed=3)
    assert a == select_negatives(HITS, {"p1", "p2"}, None, cfg, seed=3)
    assert len(a) == 3 and set(a) <= {"x", "a", "b", "c", "d"}
    draws = {tuple(select_negatives(HITS, {"p1", "p2"}, None, cfg, seed=s)) for s in range(20)}
    assert len(draws) > 1


def test_negatives_for_pairs_excludes_every_positive_of_the_query():
    pool = {"q": {"hits": [["d1", 0.9], ["d2", 0.8], ["d3", 0.7], ["d4", 0.6]], "pos": {"d1": 0.9, "d3": 0.7}}}
    qrels = {"q": {"d1": 1, "d3": 2, "d2": 0}}  # d2 has score 0: not a positive, may be a negative
    cfg = MiningConfig(rank_start=1, rank_end=4, count=5, margin=None, max_ratio=None)
    assert negatives_for_pairs([("q", "d1"), ("q", "d3")], pool, qrels, cfg)[0] == [["d2", "d4"], ["d2", "d4"]]
    # with margin 0 each pair filters against its own positive's score
    cfg0 = MiningConfig(rank_start=1, rank_end=4, count=5, margin=0.0, max_ratio=None)
    negs, removed = negatives_for_pairs([("q", "d1"), ("q", "d3")], pool, qrels, cfg0)
    assert negs == [["d2", "d4"], ["d4"]]
    assert removed == {"qrels_positive": 4, "rank_window": 0, "above_margin": 1, "above_ratio": 0, "guide": 0, "pos_score_unknown": 0}


def test_perc_pos_filter_on_hand_made_scores():
    """NV-Retriever's TopK-PercPos: keep a candidate only if its score <= 0.95 x the positive's (here 0.95 x 0.80 = 0.76)."""
    hits = [("pos", 0.80), ("n1", 0.79), ("n2", 0.76), ("n3", 0.7601), ("n4", 0.50)]
    cfg = MiningConfig(rank_start=1, rank_end=5, count=10, margin=None, max_ratio=0.95)
    screened = screen_candidates(hits, {"pos"}, 0.80, cfg)
    assert [(d, why) for _, d, why in screened] == [("pos", "qrels_positive"), ("n1", "above_ratio"), ("n2", None), ("n3", "above_ratio"), ("n4", None)]
    assert select_negatives(hits, {"pos"}, 0.80, cfg) == ["n2", "n4"]
    for off in (None, 0, 1):  # none, 0 or 1 switch the filter off
        assert select_negatives(hits, {"pos"}, 0.80, MiningConfig(rank_start=1, rank_end=5, count=10, margin=None, max_ratio=off)) == ["n1", "n2", "n3", "n4"]
    # BM25 scores (unbounded) work the same way; an unknown positive score disables the filter
    bm25 = [("pos", 20.0), ("n1", 19.5), ("n2", 18.0)]
    assert select_negatives(bm25, {"pos"}, 20.0, cfg) == ["n2"]
    assert select_negatives(bm25, {"pos"}, None, cfg) == ["n1", "n2"]


def test_guide_filter_and_counts_per_filter():
    pool = {"q": {"hits": [["p", 0.9], ["a", 0.89], ["b", 0.5], ["c", 0.4], ["d", 0.3]], "pos": {"p": 0.9}},
            "r": {"hits": [["x", 3.0], ["y", 2.0]], "pos": {}}}  # r's positive is outside its pool (BM25)
    qrels = {"q": {"p": 1}, "r": {"z": 1}}
    guide = {"q": {"p": 0.6, "a": 0.2, "b": 0.7, "c": 0.59, "d": 0.1}, "r": {"x": 0.1, "y": 0.2, "z": 0.5}}
    cfg = MiningConfig(rank_start=1, rank_end=5, count=10, margin=0.0, max_ratio=0.95)
    negs, removed = negatives_for_pairs([("q", "p"), ("r", "z")], pool, qrels, cfg, guide=guide)
    assert negs == [["c", "d"], ["x", "y"]]  # a: above 0.95 x 0.9; b: the guide puts it above the positive
    assert removed == {"qrels_positive": 1, "rank_window": 0, "above_margin": 0, "above_ratio": 1, "guide": 1, "pos_score_unknown": 1}
    assert negatives_for_pairs([("q", "p")], pool, qrels, cfg)[0] == [["b", "c", "d"]]  # no guide: b stays


def test_guide_pool_scores_hits_and_positives(tiny_bert):
    from sentence_transformers import SentenceTransformer

    corpus = {f"d{i}": {"title": "", "text": t} for i, t in enumerate(["cats purr", "dogs bark", "fish swim"])}
    pool = {"q": {"hits": [["d1", 1.0]], "pos": {}}}
    got = mining.guide_pool(SentenceTransformer(str(tiny_bert), device="cpu"), corpus, {"q": "cats"}, {"q": {"d0": 1}}, pool)
    assert set(got["q"]) == {"d0", "d1"} and all(-1.0 <= v <= 1.0 + 1e-6 for v in got["q"].values())


def test_mine_pool_bm25_is_cached(tmp_path, monkeypatch):
    corpus = {f"d{i}": {"title": "", "text": t} for i, t in enumerate(["cats purr softly", "dogs bark loudly", "cats and dogs", "fish swim", "birds sing songs"])}
    queries = {"q1": "do cats purr", "q2": "which dogs bark"}
    qrels = {"q1": {"d0": 1}, "q2": {"d1": 1}}
    cfg = MiningConfig(method="bm25", rank_end=3, pool_extra=1)
    pool = mine_pool(corpus, queries, qrels, cfg, data_checksum="abc", cache_dir=tmp_path)
    assert pool["q1"]["hits"][0][0] == "d0" and "d0" in pool["q1"]["pos"]
    assert len(list((tmp_path / "mining").glob("bm25-*.json"))) == 1

    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(mining, "bm25_pool", boom)
    assert mine_pool(corpus, queries, qrels, cfg, data_checksum="abc", cache_dir=tmp_path) == pool
    with pytest.raises(AssertionError):  # another data checksum is another key
        mine_pool(corpus, queries, qrels, cfg, data_checksum="other", cache_dir=tmp_path)


def test_unknown_method_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="dense, bm25 or none"):
        mine_pool({}, {}, {}, MiningConfig(method="splade"), data_checksum="x", cache_dir=tmp_path)
