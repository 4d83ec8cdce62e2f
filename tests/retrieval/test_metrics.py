"""Metrics against values computed by hand."""

import logging
import math
import os
import random
import subprocess
import sys

import pytest
import pytrec_eval

from retrieval.metrics import MetricSpec, evaluate, per_query_metrics, run_depth, short_queries, top_k
from tests.conftest import ROOT


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


def trec_eval_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's own ranking of one query's docs, read off pytrec_eval: doc d's rank is 1 / recip_rank with d alone relevant."""
    rank = {d: round(1 / pytrec_eval.RelevanceEvaluator({"q": {d: 1}}, {"recip_rank"}).evaluate({"q": docs})["q"]["recip_rank"]) for d in docs}
    return sorted(docs, key=rank.__getitem__)


def tied_run(rng: random.Random, n_docs: int, n_levels: int) -> dict[str, float]:
    """One query's run: ``n_docs`` ids (some numeric, so lexicographic and numeric order differ), scores from ``n_levels`` values."""
    ids = rng.sample([f"d{i}" for i in range(50)] + [str(i) for i in range(5, 15)], n_docs)
    levels = [rng.uniform(-1, 1) for _ in range(n_levels)]
    docs = {d: rng.choice(levels) for d in ids}
    return dict(rng.sample(list(docs.items()), len(docs)))  # insertion order says nothing


def test_top_k_keeps_trec_eval_order_on_ties():
    rng = random.Random(0)
    for _ in range(20):
        docs = tied_run(rng, n_docs=12, n_levels=3)
        order = trec_eval_order(docs)
        for k in (1, 3, 7, 12, 20):
            assert list(top_k({"q": docs}, k)["q"]) == order[:k]


def test_mrr_at_k_on_ties_equals_trec_eval_recip_rank_of_the_full_run():
    rng = random.Random(1)
    run = {f"q{i}": tied_run(rng, n_docs=rng.randint(3, 15), n_levels=2) for i in range(40)}
    qrels = {q: {d: rng.choice([-1, 0, 1, 2]) for d in rng.sample(list(docs), 2)} for q, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    for k in (1, 3, 5):
        expected = {q: (v["recip_rank"] if v["recip_rank"] and round(1 / v["recip_rank"]) <= k else 0.0) for q, v in full.items()}
        assert per_query_metrics(qrels, run, MetricSpec(ndcg_at=(1,), recall_at=(1,), map_at=(1,), mrr_at=(k,)))[f"mrr@{k}"] == expected


# ---- issue 17 #11: no metric deeper than the run ---------------------------------------------


def test_run_depth_and_short_queries():
    run = {"q1": {"a": 1.0, "b": 0.5}, "q2": {"c": 1.0}, "q3": {}}
    assert run_depth(run) == 2 and run_depth({}) == 0
    assert short_queries(run, 2) == ["q2", "q3"] and short_queries(run, 1) == ["q3"]


def test_metrics_deeper_than_the_run_are_not_reported(caplog):
    rng = random.Random(2)
    run = {f"q{i}": {f"d{j}": rng.random() for j in rng.sample(range(500), 50)} for i in range(5)}
    qrels = {q: {f"d{j}": 1 for j in rng.sample(range(500), 5)} for q in run}
    full = evaluate(qrels, run)
    with caplog.at_level(logging.WARNING, logger="retrieval.metrics"):
        cut = evaluate(qrels, run, depth=run_depth(run))
    assert set(full) - set(cut) == {"recall@100", "recall@1000", "ndcg@100", "map@100"}
    assert cut == {m: v for m, v in full.items() if m in cut}
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "depth 50" in msg and all(m in msg for m in ("ndcg@100", "recall@100", "recall@1000", "map@100"))
    per_q = per_query_metrics(qrels, run, depth=10)
    assert set(per_q) == {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "recall@10", "mrr@10"}


def test_metric_spec_within_depth():
    spec = MetricSpec(ndcg_at=(5, 10, 100), recall_at=(100, 1000), map_at=(100,), mrr_at=(10,))
    assert spec.within(None) == spec and spec.within(1000) == spec
    assert spec.within(50) == MetricSpec(ndcg_at=(5, 10), recall_at=(), map_at=(), mrr_at=(10,))
    assert evaluate({"q": {"d": 1}}, {"q": {"d": 1.0}}, spec, depth=3) == {}


def test_default_metric_names():
    m = evaluate({"q": {"d": 1}}, {"q": {"d": 1.0}})
    assert set(m) == {"ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@100", "recall@10", "recall@100", "recall@1000", "map@100", "mrr@10"}
    assert all(v == pytest.approx(1.0) for v in m.values())


def test_queries_judged_only_below_minus_one_do_not_crash_trec_eval():
    # trec_eval (form_res_rels.c) sizes an array by a query's max relevance + 1: a query whose
    # judgments are all <= -2 makes it write out of bounds and abort the process. Run in a child.
    code = (
        "from retrieval.metrics import evaluate\n"
        "qrels = {'q1': {'b': 1}, 'q2': {'a': -2}, 'q3': {'c': -3, 'a': -1}}\n"
        "run = {q: {'a': 1.0, 'b': 0.5, 'c': 0.2} for q in qrels}\n"
        "ref = evaluate({'q1': {'b': 1}, 'q2': {'a': -1}, 'q3': {'c': -1, 'a': -1}}, run)\n"
        "m = evaluate(qrels, run)\n"
        "assert m == ref, (m, ref)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]
