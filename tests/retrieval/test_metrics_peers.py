"""Our metrics against the peers (issue 17, acceptance 4a): BEIR's ``EvaluateRetrieval.evaluate``,
pytrec_eval (trec_eval) called directly, and ir_measures, on random runs with many ties, graded
qrels with negative (junk) judgments, and cutoffs past the run's depth. All equal to 1e-9.

Where a peer differs by design, the difference is pinned by a test of its own:
  * BEIR rounds every mean to 5 decimals: we compare with its rounding switched off, and check
    that its rounded numbers are ours rounded.
  * BEIR drops hits whose doc id equals the query id unless ``ignore_identical_ids=False``.
  * BEIR averages over the queries that pytrec_eval scored (those in the run); we average over
    every query with qrels, a query the run left out counting 0 (as MTEB does).
  * MRR@k ties: BEIR's ``mrr`` (a stable sort on score, ties in dict order) and ir_measures' ``RR@k``
    (its msmarco provider: ties by ascending doc id) do not break ties as trec_eval does (doc id
    descending). Ours follows trec_eval: it is compared with trec_eval's ``recip_rank`` of the
    whole run (via pytrec_eval and via ir_measures' ``RR``), which equals MRR@k when the first
    relevant hit is within the top k.
  * trec_eval aborts on a query judged only <= -2 (the peers crash with it), so the random qrels
    give each query a judgment >= 0; tests/retrieval/test_metrics.py checks that ours does not crash.
"""

from __future__ import annotations

import random

import pytest
import pytrec_eval

from retrieval.metrics import MetricSpec, evaluate, per_query_metrics, run_depth

beir_evaluation = pytest.importorskip("beir.retrieval.evaluation")  # the test extra installs beir and ir-measures

KS = (1, 3, 5, 10, 20, 50, 100)  # past the run's depth (at most 30 hits per query)
SPEC = MetricSpec(ndcg_at=KS, recall_at=KS, map_at=KS, mrr_at=KS)
TOL = 1e-9


def random_case(seed: int, n_queries: int = 60, max_depth: int = 30):
    """``(qrels, run)``: graded qrels in -2..3 (some queries with no positive judgment), runs of 1..max_depth hits
    whose scores take 3 to 5 distinct values (many ties), doc ids that sort differently as text and as
    numbers, and some doc ids equal to query ids."""
    rng = random.Random(seed)
    qids = [f"q{i}" for i in range(n_queries)]
    pool = [f"d{i}" for i in range(80)] + [str(i) for i in range(1, 30)] + qids[:10]
    qrels, run = {}, {}
    for q in qids:
        judged = rng.sample(pool, rng.randint(1, 12))
        qrels[q] = {d: rng.choice([-2, -1, 0, 0, 1, 1, 2, 3]) for d in judged}
        if max(qrels[q].values()) < 0:  # a query judged only <= -2 aborts trec_eval (see metrics.trec_eval_qrels)
            qrels[q][judged[0]] = 0
        levels = [round(rng.uniform(-5, 5), 2) for _ in range(rng.randint(3, 5))]
        hits = rng.sample(pool, rng.randint(1, max_depth))
        hits += rng.sample(judged, min(len(judged), rng.randint(0, 3)))  # some judged docs retrieved
        run[q] = {d: rng.choice(levels) for d in dict.fromkeys(hits)}
    return qrels, run


def trec_eval_mrr(qrels, run, k: int) -> dict[str, float]:
    """trec_eval semantics of MRR@k: the whole run's ``recip_rank`` if that first relevant rank is <= k, else 0."""
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    return {q: (v["recip_rank"] if v["recip_rank"] and round(1 / v["recip_rank"]) <= k else 0.0) for q, v in rr.items()}


@pytest.fixture(params=[0, 1, 2])
def case(request):
    return random_case(request.param)


def test_per_query_equals_pytrec_eval_directly(case):
    qrels, run = case
    ours = per_query_metrics(qrels, run, SPEC)
    cuts = ",".join(map(str, KS))
    ref = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{cuts}", f"map_cut.{cuts}", f"recall.{cuts}"}).evaluate(run)
    for name, key in (("ndcg", "ndcg_cut"), ("map", "map_cut"), ("recall", "recall")):
        for k in KS:
            assert ours[f"{name}@{k}"] == pytest.approx({q: ref[q][f"{key}_{k}"] for q in qrels}, abs=TOL)
    for k in KS:
        assert ours[f"mrr@{k}"] == pytest.approx(trec_eval_mrr(qrels, run, k), abs=TOL)


def test_mean_equals_beir_evaluate(case, monkeypatch):
    qrels, run = case
    ours = evaluate(qrels, run, SPEC)
    rounded = beir_evaluation.EvaluateRetrieval.evaluate(qrels, {q: dict(h) for q, h in run.items()}, list(KS), ignore_identical_ids=False)
    monkeypatch.setattr(beir_evaluation, "round", lambda x, n=None: x, raising=False)  # BEIR rounds to 5 decimals
    ndcg, _map, recall, _ = beir_evaluation.EvaluateRetrieval.evaluate(qrels, {q: dict(h) for q, h in run.items()}, list(KS), ignore_identical_ids=False)
    for k in KS:
        assert ours[f"ndcg@{k}"] == pytest.approx(ndcg[f"NDCG@{k}"], abs=TOL)
        assert ours[f"map@{k}"] == pytest.approx(_map[f"MAP@{k}"], abs=TOL)
        assert ours[f"recall@{k}"] == pytest.approx(recall[f"Recall@{k}"], abs=TOL)
        assert rounded[0][f"NDCG@{k}"] == pytest.approx(round(ours[f"ndcg@{k}"], 5), abs=1e-5 + TOL)


@pytest.fixture
def ir_measures():
    return pytest.importorskip("ir_measures")


def test_per_query_equals_ir_measures(case, ir_measures):
    qrels, run = case
    ours = per_query_metrics(qrels, run, SPEC)
    M = ir_measures
    measures = {f"{n}@{k}": m @ k for k in KS for n, m in (("ndcg", M.nDCG), ("map", M.AP), ("recall", M.R))}
    got: dict[str, dict[str, float]] = {}
    for metric in M.iter_calc(list(measures.values()) + [M.RR], qrels, run):
        got.setdefault(str(metric.measure), {})[metric.query_id] = metric.value
    for name, measure in measures.items():
        assert ours[name] == pytest.approx(got[str(measure)], abs=TOL)
    for k in KS:  # trec_eval's RR of the whole run, cut at k
        assert ours[f"mrr@{k}"] == pytest.approx({q: (rr if rr and round(1 / rr) <= k else 0.0) for q, rr in got["RR"].items()}, abs=TOL)


def test_depth_drops_exactly_the_deeper_cutoffs_and_keeps_the_rest(case):
    qrels, run = case
    d = run_depth(run)
    full, cut = evaluate(qrels, run, SPEC), evaluate(qrels, run, SPEC, depth=d)
    assert set(cut) == {f"{n}@{k}" for n in ("ndcg", "recall", "map", "mrr") for k in KS if k <= d}
    assert cut == {m: full[m] for m in cut}


# ---- the peers' documented differences -----------------------------------------------------


def test_beir_drops_identical_ids_by_default():
    qrels, run = {"q1": {"q1": 1, "d2": 1}}, {"q1": {"q1": 2.0, "d1": 1.0}}
    default = beir_evaluation.EvaluateRetrieval.evaluate(qrels, {q: dict(h) for q, h in run.items()}, [1])
    explicit = beir_evaluation.EvaluateRetrieval.evaluate(qrels, {q: dict(h) for q, h in run.items()}, [1], ignore_identical_ids=False)
    ours = evaluate(qrels, run, MetricSpec(ndcg_at=(1,), recall_at=(1,), map_at=(1,), mrr_at=(1,)))
    assert explicit[2]["Recall@1"] == ours["recall@1"] != default[2]["Recall@1"]


def test_beir_averages_over_the_run_we_over_the_qrels():
    qrels, run = {"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}}  # q2 retrieved nothing
    spec = MetricSpec(ndcg_at=(1,), recall_at=(1,), map_at=(1,), mrr_at=(1,))
    beir = beir_evaluation.EvaluateRetrieval.evaluate(qrels, dict(run), [1], ignore_identical_ids=False)
    per_q = per_query_metrics(qrels, run, spec)["ndcg@1"]
    assert beir[0]["NDCG@1"] == per_q["q1"] and evaluate(qrels, run, spec)["ndcg@1"] == sum(per_q.values()) / 2


def test_peers_mrr_cut_tie_orders_differ_from_trec_eval(ir_measures):
    # three tied hits, only "a" relevant, inserted b, a, c. trec_eval ranks c, b, a (ids descending): "a" 3rd;
    # BEIR's stable sort keeps b, a, c: "a" 2nd; ir_measures' RR@k sorts a, b, c: "a" 1st.
    qrels, run = {"q": {"a": 1}}, {"q": {"b": 1.0, "a": 1.0, "c": 1.0}}
    ours = per_query_metrics(qrels, run, MetricSpec(ndcg_at=(1,), recall_at=(1,), map_at=(1,), mrr_at=(1, 3)))
    assert (ours["mrr@1"]["q"], ours["mrr@3"]["q"]) == (trec_eval_mrr(qrels, run, 1)["q"], trec_eval_mrr(qrels, run, 3)["q"]) == (0.0, 1 / 3)
    beir = beir_evaluation.EvaluateRetrieval.evaluate_custom(qrels, run, [1, 3], metric="mrr")
    assert (beir["MRR@1"], beir["MRR@3"]) == (0.0, 0.5)
    irm = {str(m.measure): m.value for m in ir_measures.iter_calc([ir_measures.RR @ 1, ir_measures.RR @ 3, ir_measures.RR], qrels, run)}
    assert (irm["RR@1"], irm["RR@3"]) == (1.0, 1.0) and irm["RR"] == pytest.approx(1 / 3)  # RR (pytrec_eval provider) is trec_eval's
