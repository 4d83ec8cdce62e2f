"""Retrieval metrics from pytrec_eval, in the BEIR/MTEB conventions, with trec_eval's tie order.

nDCG uses linear gain (rel) and a log2 discount, as trec_eval does. MRR@k is pytrec_eval's
``recip_rank`` on the run cut to its top k (pytrec_eval has no cut for it). The cut keeps the
order trec_eval ranks by: score descending, then doc id descending (``strcmp`` on the ids, so
``"d9"`` before ``"d10"`` before ``"d1"``), so MRR@k equals trec_eval's reciprocal rank of the
whole run whenever the first relevant document is within k (BEIR's own MRR, a stable sort on
score alone, keeps ties in dict order instead; ir_measures' ``RR@k`` sorts ties by ascending id).

Only queries present in the qrels are scored; a scored query with no retrieved document
counts as 0 (our pipelines always return a list for every query, so this matches BEIR and MTEB).
A metric whose cutoff is deeper than the run (``depth``, e.g. recall@1000 of a ``--top-k 50``
run) is not reported: :meth:`MetricSpec.within` drops it, and :func:`evaluate` logs what it dropped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields, replace

import pytrec_eval

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut"}  # our name -> pytrec_eval's (mrr: recip_rank on the cut run)


@dataclass(frozen=True)
class MetricSpec:
    ndcg_at: tuple[int, ...] = (1, 3, 5, 10, 100)
    recall_at: tuple[int, ...] = (10, 100, 1000)
    map_at: tuple[int, ...] = (100,)
    mrr_at: tuple[int, ...] = (10,)

    def names(self) -> list[str]:
        """``["ndcg@1", ..., "mrr@10"]``: the metrics this spec reports."""
        return [f"{f.name[:-3]}@{k}" for f in fields(self) for k in getattr(self, f.name)]

    def within(self, depth: int | None) -> "MetricSpec":
        """This spec without the cutoffs deeper than ``depth`` hits per query (None: all kept).

        >>> MetricSpec().within(50).names()
        ['ndcg@1', 'ndcg@3', 'ndcg@5', 'ndcg@10', 'recall@10', 'mrr@10']
        """
        if depth is None:
            return self
        return replace(self, **{f.name: tuple(k for k in getattr(self, f.name) if k <= depth) for f in fields(self)})


def run_depth(run: Run) -> int:
    """The most hits any query of ``run`` has (0 for an empty run): the deepest cutoff the run can be scored at."""
    return max((len(docs) for docs in run.values()), default=0)


def short_queries(run: Run, k: int) -> list[str]:
    """The queries of ``run`` with fewer than ``k`` hits (a MaxP merge of passages, a small corpus, a filtered index).

    >>> short_queries({"q1": {"a": 1.0, "b": 0.5}, "q2": {"c": 1.0}}, 2)
    ['q2']
    """
    return [q for q, docs in run.items() if len(docs) < k]


def trec_order(docs: dict[str, float]) -> list[tuple[str, float]]:
    """One query's ``(doc_id, score)`` pairs in trec_eval's order: score descending, then doc id descending.

    >>> [d for d, _ in trec_order({"a": 1.0, "c": 2.0, "b": 1.0, "d10": 0.0, "d9": 0.0})]
    ['c', 'b', 'a', 'd9', 'd10']
    """
    return sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)


def top_k(run: Run, k: int) -> Run:
    """Keep each query's k best-scored documents, ties broken as trec_eval breaks them (:func:`trec_order`)."""
    return {qid: dict(trec_order(docs)[:k]) for qid, docs in run.items()}


def trec_eval_qrels(qrels: Qrels) -> Qrels:
    """``qrels`` with every judgment below -1 passed as -1, which trec_eval reads the same way.

    trec_eval reads any negative relevance alike (``RELVALUE_UNJUDGED``: not relevant, no gain), but sizes an
    array by a query's largest relevance + 1 (``form_res_rels.c``): a query judged only <= -2 makes
    it write out of bounds and abort the process (pytrec_eval-terrier 0.5.11: ``free(): invalid pointer``).
    """
    if all(r >= -1 for docs in qrels.values() for r in docs.values()):
        return qrels
    return {q: {d: max(r, -1) for d, r in docs.items()} for q, docs in qrels.items()}


def per_query_metrics(qrels: Qrels, run: Run, spec: MetricSpec = MetricSpec(), *, depth: int | None = None) -> dict[str, dict[str, float]]:
    """``{metric_name: {qid: value}}`` for every query in ``qrels``. Names: ``ndcg@10``, ``recall@100``, ``map@100``, ``mrr@10``.

    ``depth``: hits per query the run was asked for; metrics with a deeper cutoff are left out.
    """
    spec = spec.within(depth)
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    judged = trec_eval_qrels(qrels)  # same keys as qrels
    cutoffs = {name: getattr(spec, f"{name}_at") for name in MEASURES}
    measures = {f"{MEASURES[name]}." + ",".join(map(str, ks)) for name, ks in cutoffs.items() if ks}
    scores = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(run) if measures else {}
    out: dict[str, dict[str, float]] = {}
    for name, ks in cutoffs.items():
        for k in ks:
            out[f"{name}@{k}"] = {q: scores.get(q, {}).get(f"{MEASURES[name]}_{k}", 0.0) for q in qrels}
    for k in spec.mrr_at:
        rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top_k(run, k))
        out[f"mrr@{k}"] = {q: rr.get(q, {}).get("recip_rank", 0.0) for q in qrels}
    return out


def evaluate(qrels: Qrels, run: Run, spec: MetricSpec = MetricSpec(), *, depth: int | None = None) -> dict[str, float]:
    """Mean of each metric over the queries in ``qrels``; ``depth`` as in :func:`per_query_metrics` (dropped ones logged).

    >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
    >>> run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 2.0, "d3": 1.0}}
    >>> round(evaluate(qrels, run)["mrr@10"], 4)
    0.75
    """
    return score(qrels, run, spec, depth=depth)[0]


def score(qrels: Qrels, run: Run, spec: MetricSpec = MetricSpec(), *, depth: int | None = None) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``(means, per_query)``: :func:`evaluate`'s means and the :func:`per_query_metrics` they average."""
    dropped = [m for m in spec.names() if m not in spec.within(depth).names()]
    if dropped:
        log.warning("not reporting %s: deeper than the run's depth %d (hits per query)", ", ".join(dropped), depth)
    per_q = per_query_metrics(qrels, run, spec, depth=depth)
    return {name: (math.fsum(v.values()) / len(v) if v else 0.0) for name, v in per_q.items()}, per_q  # fsum: exact, so the mean never depends on query order


def compact(per_query: dict[str, dict[str, float]], order: list[str] | None = None) -> dict[str, list]:
    """``{metric: {qid: value}}`` -> ``{"qids": [...], metric: [values in qids order]}`` (qids written once).

    ``order``: the qids' order (default: the first metric's); the pipeline passes the queries' text
    order, so a saved result, and a bootstrap over it, does not depend on the file's order or the ids.

    >>> compact({"ndcg@10": {"q1": 1.0, "q2": 0.5}, "mrr@10": {"q1": 1.0, "q2": 0.0}})
    {'qids': ['q1', 'q2'], 'ndcg@10': [1.0, 0.5], 'mrr@10': [1.0, 0.0]}
    """
    first = next(iter(per_query.values()), {})
    qids = [q for q in order if q in first] if order is not None else list(first)
    return {"qids": qids, **{m: [v[q] for q in qids] for m, v in per_query.items()}}
