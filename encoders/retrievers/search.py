"""Searching a retriever deep enough that the documents kept never depend on its own tie order.

A retriever asked for its top ``n`` picks among documents tied at the n-th score in its own order
(FAISS by row, bm25s by its heap). :func:`search_deep` searches again, twice as deep, every query
whose tie at a given rank may run past the end of its list, until the tie group ends or the corpus
does; :func:`retrieval.ranking.tie_closed` then keeps each query's top k and every document tied
with the k-th. The pipeline's job cuts that to k in trec_eval's order (:func:`benchmarks.job.search_run`),
and a fusion fuses its components' tie-closed runs (:mod:`encoders.retrievers.fusion`).
"""

from __future__ import annotations

from encoders.retrievers.protocol import Queries, Retriever, Run
from retrieval.ranking import boundary_open


def search_deep(retriever: Retriever, queries: Queries, asked: int, n_docs: int, close_at: int) -> tuple[Run, int]:
    """``retriever``'s run for ``queries`` searched ``asked`` deep (at most ``n_docs``), and deeper for every query whose
    tie at rank ``close_at`` may go past the end of its list; returns the run (every hit found) and how many queries were searched again."""
    asked = min(asked, n_docs)
    if not queries or asked <= 0:
        return {q: {} for q in queries}, 0
    run = dict(retriever.search(queries, asked))
    depth, again = asked, set()
    pending = [q for q in queries if boundary_open(run.get(q, {}), close_at, depth)]
    while pending and depth < n_docs:
        depth = min(n_docs, 2 * depth)
        again.update(pending)
        run.update(retriever.search({q: queries[q] for q in pending}, depth))
        pending = [q for q in pending if boundary_open(run.get(q, {}), close_at, depth)]
    return run, len(again)
