"""Cutting runs to a depth without letting the retriever's tie order or the search depth leak into a metric.

trec_eval ranks each query's hits by score, then by document id (:func:`retrieval.metrics.trec_order`).
A retriever that returns its top ``k`` picks among documents tied at the k-th score in its own
order (FAISS by row, bm25s by its heap), so the documents a cutoff keeps could depend on the depth
asked and on the corpus order. The functions here make a cut that depends on the scores alone:

* :func:`boundary_open`: whether a query's hits may leave out documents tied with its k-th hit
  (the list is as long as asked and its last score equals the k-th one), so the search must go deeper;
* :func:`cut`: each query's first ``k`` hits in trec_eval's order;
* :func:`first_tie_rank`, :func:`tied_queries`: where exact score ties are, the only places where
  renaming document ids can move a metric (trec_eval breaks them by id).

    >>> cut({"q": {"a": 1.0, "b": 2.0, "c": 1.0}}, 2)
    {'q': {'b': 2.0, 'c': 1.0}}
"""

from __future__ import annotations

from collections.abc import Iterable

from retrieval.metrics import trec_order

Run = dict[str, dict[str, float]]


def cut(run: Run, k: int) -> Run:
    """Each query's ``k`` best hits in trec_eval's order (score descending, then doc id descending)."""
    return {qid: dict(trec_order(docs)[:k]) for qid, docs in run.items()}


def boundary_open(hits: dict[str, float], k: int, asked: int) -> bool:
    """Whether a search asked for ``asked`` hits may have left out a document tied with the ``k``-th best.

    True when the list is full (``len(hits) == asked``, so more documents may exist) and its lowest
    score equals its ``k``-th best: the tie group at the cut may go on past the end of the list.

    >>> boundary_open({"a": 3.0, "b": 2.0, "c": 2.0}, 2, 3), boundary_open({"a": 3.0, "b": 2.0, "c": 1.0}, 2, 3)
    (True, False)
    >>> boundary_open({"a": 3.0, "b": 2.0}, 2, 3)  # fewer than asked: nothing else was there
    False
    """
    if len(hits) < asked or len(hits) < k or k <= 0:
        return False
    scores = sorted(hits.values(), reverse=True)
    return scores[-1] == scores[k - 1]


def tie_closed(run: Run, k: int) -> Run:
    """Each query's hits scoring at least its k-th best: the top ``k`` and every document tied with the k-th.

    The documents kept depend on the scores alone (a cut at exactly k would pick among the tied by id).

    >>> tie_closed({"q": {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}}, 2)
    {'q': {'a': 3.0, 'b': 2.0, 'c': 2.0}}
    """
    out = {}
    for qid, docs in run.items():
        if len(docs) <= k:
            out[qid] = dict(docs)
            continue
        floor = sorted(docs.values(), reverse=True)[k - 1]
        out[qid] = {d: s for d, s in docs.items() if s >= floor}
    return out


def first_tie_rank(hits: dict[str, float]) -> int | None:
    """The rank (from 1) of the first hit whose score equals the next hit's, in trec_eval's order; None without ties.

    A metric at cutoff ``c`` can depend on document ids (trec_eval's tie order) only if this rank is <= ``c``.

    >>> first_tie_rank({"a": 3.0, "b": 2.0, "c": 2.0}), first_tie_rank({"a": 1.0, "b": 0.5}) is None
    (2, True)
    """
    scores = [s for _, s in trec_order(hits)]
    return next((i + 1 for i in range(len(scores) - 1) if scores[i] == scores[i + 1]), None)


def tied_queries(run: Run, cutoffs: Iterable[int]) -> dict[str, int]:
    """``{"@c": number of queries with an exact tie within their top c + 1 hits}`` for each cutoff ``c``.

    >>> tied_queries({"q1": {"a": 1.0, "b": 1.0}, "q2": {"a": 2.0, "b": 1.0, "c": 1.0}}, [1, 2])
    {'@1': 1, '@2': 2}
    """
    ranks = [first_tie_rank(docs) for docs in run.values()]
    return {f"@{c}": sum(1 for r in ranks if r is not None and r <= c) for c in sorted(set(cutoffs))}
