"""Metrics against values computed by hand."""

import math

import pytest

from retrieval.metrics import MetricSpec, evaluate, per_query_metrics, top_k


def test_ndcg_recall_mrr_map_hand_computed():
    # q1: relevant d1 (rel 1) and d3 (rel 2); ranked d2, d1, d3.
    # DCG@3 = 0/log2(2) + 1/log2(3) + 2/log2(4) ; IDCG@3 = 2/log2(2) + 1/log2(3)
    qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"d9": 1}}
    run = {"q1": {"d2": 3.0, "d1": 2.0, "d3": 1.0}, "q2": {"d5": 1.0}}
    m = per_query_metrics(qrels, run, MetricSpec(ndcg_at=(3,), recall_at=(1, 3), map_at=(3,), mrr_at=(10, 1)))
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 + 1 / math.log2(3)
    assert m["ndcg@3"]["q1"] == pytest.approx(dcg / idcg, abs=1e-6)
    assert m["ndcg@3"]["q2"] == 0.0
    assert m["recall@1"]["q1"] == 0.0 and m["recall@3"]["q1"] == 1.0
    assert m["mrr@10"]["q1"] == pytest.approx(0.5) and m["mrr@1"]["q1"] == 0.0
    # AP@3 = (1/2 + 2/3) / 2 relevant
    assert m["map@3"]["q1"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-6)
    mean = evaluate(qrels, run, MetricSpec(ndcg_at=(3,), recall_at=(3,), map_at=(3,), mrr_at=(10,)))
    assert mean["ndcg@3"] == pytest.approx(dcg / idcg / 2, abs=1e-6)


def test_queries_without_qrels_are_dropped_and_missing_runs_count_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0}, "q_extra": {"d1": 1.0}}  # q_extra has no qrels; q2 retrieved nothing
    m = evaluate(qrels, run)
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["recall@100"] == pytest.approx(0.5)


def test_top_k_breaks_ties_by_doc_id():
    assert list(top_k({"q": {"b": 1.0, "a": 1.0, "c": 2.0}}, 2)["q"]) == ["c", "a"]


def test_default_metric_names():
    m = evaluate({"q": {"d": 1}}, {"q": {"d": 1.0}})
    assert set(m) == {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@100", "recall@10", "recall@100", "recall@1000", "map@100", "mrr@10"}
    assert all(v == pytest.approx(1.0) for v in m.values())
