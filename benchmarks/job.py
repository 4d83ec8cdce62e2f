"""What the pipeline runs: a job (one dataset or MTEB task) scores one retriever; contexts give it a keyed cache.

A job implements :class:`Job`: ``identity()`` (what about the data determines the scores) and
``evaluate(retriever, contexts, dist) -> Scored`` (``None`` on torchrun ranks other than 0).
:class:`Contexts` hands each (retriever, corpus) pair its cache folder, keyed by the corpus
checksum, the retriever's identity and every model and encoding setting of the run spec that
applies to its kind; ``--no-cache`` empties that folder once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchmarks.spec import RunSpec
from encoders.retrievers.protocol import IndexContext, Retriever, Run
from encoders.retrievers.search import search_deep
from retrieval.distributed import Dist
from retrieval.codeid import fingerprint_of
from retrieval.io import cache_key
from retrieval.beir import text_order
from retrieval.metrics import trec_order
from retrieval.ranking import cut
from retrieval.store import remove_store

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """A job's outcome for one retriever, before it becomes a :class:`benchmarks.results.Result`."""

    metrics: dict[str, float]
    num_queries: int
    num_docs: int
    provenance: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    run: Run | None = None  # the BEIR run, when the job produced one (for --save-run)
    per_query: dict = field(default_factory=dict)  # {"qids": [...], metric: [values]}: significance tests without recomputing


class Job(Protocol):
    dataset: str  # display name
    split: str
    task: str

    def identity(self) -> dict: ...

    def evaluate(self, retriever: Retriever, contexts: "Contexts", dist: Dist) -> Scored | None: ...


class Contexts:
    """Cache folders for retrievers: ``<cache>/retrievers/<kind>/<corpus checksum>-<key>``."""

    def __init__(self, spec: RunSpec, root: Path, dist: Dist):
        self.spec, self.root, self.dist = spec, Path(root), dist
        self.wiped: set[Path] = set()

    def key(self, retriever: Retriever, corpus_checksum: str) -> str:
        """The cache folder's key: the corpus, the retriever's identity, its model and encoding settings, and the
        code of its module with everything that module imports (:func:`retrieval.codeid.fingerprint_of`): embeddings
        and indexes made by other encoder or index code are never reused; a change elsewhere (metrics, tables,
        another kind) re-encodes nothing."""
        settings = self.spec.settings(retriever.kind, ("model", "encoding"))
        return cache_key(kind=retriever.kind, corpus=corpus_checksum, identity=retriever.identity(), settings=settings, code=fingerprint_of(retriever))

    def __call__(self, retriever: Retriever, corpus_checksum: str, desc: str = "", drop_self_hits: Callable[[Run, int], Run] | None = None) -> IndexContext:
        """The context of ``retriever`` on a corpus: call it on every rank for a distributed retriever, on rank 0 for others.

        Its ``context_for(other)`` is this call for ``other`` on the same corpus (a fusion's components
        get the folders they have alone); ``drop_self_hits`` is set by a job that drops self-hits.
        """
        d = self.dist if retriever.distributed else Dist()
        folder = self.root / "retrievers" / retriever.kind / f"{corpus_checksum[:16]}-{self.key(retriever, corpus_checksum)}"
        if self.spec.output.no_cache and folder not in self.wiped:
            if d.is_main and folder.exists():
                wipe(folder)
            self.wiped.add(folder)
        d.barrier()  # no rank writes into the folder before rank 0 has emptied it
        return IndexContext(cache=folder, corpus_checksum=corpus_checksum, dist=d, desc=desc, drop_self_hits=drop_self_hits,
                            context_for=lambda other: self(other, corpus_checksum, desc, drop_self_hits))


def wipe(folder: Path) -> None:
    """``--no-cache``: empty a retriever's cache folder; each store in it is removed under its writer lock,
    so a second run filling it is never cut off mid-write (it finishes first)."""
    for child in folder.iterdir():
        if child.is_dir():
            remove_store(child)
        elif not child.name.endswith(".lock"):  # lock files stay: a waiter may hold one open
            child.unlink(missing_ok=True)


SEARCH_FLOOR = 1000  # every search goes at least this deep, then is cut: a metric at a cutoff <= 1000 never depends on --top-k


@dataclass
class Searched:
    """A run as :func:`search_run` made it, and how deep it can honestly be scored."""

    run: Run  # every query: at most k hits in trec_eval's order; {} for a query with no text
    asked: int  # the depth the retriever was first asked for
    deepened: int  # queries searched again deeper: their tie at the cut reached the end of their list
    empty: list[str]  # queries with an empty text: not searched, no hits, so they score 0
    short: list[str]  # queries with fewer hits than there are documents to return, from a retriever whose short runs are not exhaustive
    depth: int | None  # the deepest cutoff every query's run supports; None: all of k

    def info(self, k: int) -> dict:
        return {"asked": self.asked, "top_k": k, "deepened_queries": self.deepened, "empty_queries": len(self.empty),
                "short_queries": len(self.short), "complete_depth": self.depth}


def search_run(retriever: Retriever, queries: dict[str, str], k: int, corpus, *, drop: Callable[[Run, int], Run] | None = None) -> Searched:
    """``retriever``'s run for ``queries`` at depth ``k`` over ``corpus`` (anything with ``len`` and ``in``), the same for every kind.

    1. Queries with an empty text are not searched: they retrieve nothing (a warning counts them). The
       others are searched in the order of their texts' hashes, whatever order the file had.
    2. The retriever is asked for ``max(k + 1, SEARCH_FLOOR)`` hits (+1 when ``drop`` removes self-hits),
       so a cutoff <= 1000 sees the same search whatever ``--top-k`` is, and one hit past the cut shows
       whether a tie straddles it.
    3. A query whose lowest returned score equals its k-th (:func:`retrieval.ranking.boundary_open`) is
       searched again at twice the depth, until the tie group ends or the corpus does
       (:func:`encoders.retrievers.search.search_deep`).
    4. Self-hits are dropped (``drop``, ArguAna and Quora), then each query keeps its ``k`` best in
       trec_eval's order (:func:`retrieval.ranking.cut`): the cut depends on the scores alone.
    5. A query with fewer hits than documents it could get is *short*. A retriever whose short runs
       are exhaustive (``exhaustive = True``: BM25 returns every document sharing a term) is trusted;
       otherwise ``depth`` is the shortest such run, and no metric deeper than it may be reported.
    """
    n_docs = len(corpus)
    k = min(k, n_docs)
    empty = [q for q, text in queries.items() if not text.strip()]
    if empty:
        log.warning("%d queries have an empty text (e.g. %r): they retrieve nothing and score 0", len(empty), empty[0])
    todo = {q: queries[q] for q in text_order(queries) if queries[q].strip()}  # searched in text order: batches never depend on the file's order
    extra = int(drop is not None)
    asked = min(n_docs, max(k + 1, SEARCH_FLOOR) + extra)
    run, deepened = search_deep(retriever, todo, asked, n_docs, close_at=k + extra)
    if deepened:
        log.info("%d queries had a score tie at the cut reaching the end of their list: searched again, deeper", deepened)
    run = drop(run, k) if drop is not None else cut(run, k)
    out = {q: run.get(q, {}) if q in todo else {} for q in queries}
    short = [] if getattr(retriever, "exhaustive", False) else [q for q in todo if len(out[q]) < min(k, n_docs - (1 if drop is not None and q in corpus else 0))]
    if short:
        log.warning("%s: %d of %d queries got fewer than %d hits (e.g. %r: %d); metrics deeper than %d are not reported",
                    retriever.name, len(short), len(todo), k, short[0], len(out[short[0]]), min(len(out[q]) for q in short))
    return Searched(out, asked, deepened, empty, short, min((len(out[q]) for q in short), default=None))


def drop_self_hits(run: Run, k: int) -> Run:
    """Drop each query's hit on the document with its own id, then keep its ``k`` best.

    >>> drop_self_hits({"q1": {"q1": 3.0, "d1": 2.0, "d2": 1.0}}, 1)
    {'q1': {'d1': 2.0}}
    """
    return {qid: dict(trec_order({d: s for d, s in hits.items() if d != qid})[:k]) for qid, hits in run.items()}
