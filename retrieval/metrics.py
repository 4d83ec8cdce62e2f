"""Retrieval metrics from pytrec_eval, in the BEIR/MTEB conventions.

nDCG uses linear gain (rel) and a log2 discount, as trec_eval does. MRR@k is pytrec_eval's
``recip_rank`` on the run cut to its top k (pytrec_eval has no cut for it), as BEIR does.
Only queries present in the qrels are scored; a scored query with no retrieved document
counts as 0 (our pipelines always return a list for every query, so this matches BEIR and MTEB).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytrec_eval

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class MetricSpec:
    ndcg_at: tuple[int, ...] = (1, 3, 5, 10, 100)
    recall_at: tuple[int, ...] = (10, 100, 1000)
    map_at: tuple[int, ...] = (100,)
    mrr_at: tuple[int, ...] = (10,)


def top_k(run: Run, k: int) -> Run:
    """Keep each query's k best-scored documents (ties broken by doc id, as trec_eval sorts)."""
    out: Run = {}
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        out[qid] = dict(ranked)
    return out


def per_query_metrics(qrels: Qrels, run: Run, spec: MetricSpec = MetricSpec()) -> dict[str, dict[str, float]]:
    """``{metric_name: {qid: value}}`` for every query in ``qrels``. Names: ``ndcg@10``, ``recall@100``, ``map@100``, ``mrr@10``."""
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    measures = {
        "ndcg_cut." + ",".join(map(str, spec.ndcg_at)),
        "recall." + ",".join(map(str, spec.recall_at)),
        "map_cut." + ",".join(map(str, spec.map_at)),
    }
    scores = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out: dict[str, dict[str, float]] = {}
    for name, key, ks in (("ndcg", "ndcg_cut", spec.ndcg_at), ("recall", "recall", spec.recall_at), ("map", "map_cut", spec.map_at)):
        for k in ks:
            out[f"{name}@{k}"] = {q: scores.get(q, {}).get(f"{key}_{k}", 0.0) for q in qrels}
    for k in spec.mrr_at:
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k(run, k))
        out[f"mrr@{k}"] = {q: rr.get(q, {}).get("recip_rank", 0.0) for q in qrels}
    return out


def evaluate(qrels: Qrels, run: Run, spec: MetricSpec = MetricSpec()) -> dict[str, float]:
    """Mean of each metric over the queries in ``qrels``.

    >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
    >>> run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 2.0, "d3": 1.0}}
    >>> round(evaluate(qrels, run)["mrr@10"], 4)
    0.75
    """
    per_q = per_query_metrics(qrels, run, spec)
    return {name: (sum(v.values()) / len(v) if v else 0.0) for name, v in per_q.items()}
