"""The retriever protocol: what every retriever kind (BM25, DPR, ColBERT, fusion, a toy in a test) implements.

A retriever *holds* its encoder and its index; the pipeline (``benchmarks.pipeline``) owns the
loop around it: keys, result caching, resume, torchrun sharding, metrics and provenance.

    retriever.index(corpus, ctx)          # corpus: BEIR dict {doc_id: {"title", "text"}}
    run = retriever.search(queries, k)    # queries: {qid: text} -> run {qid: {doc_id: score}}, <= k hits each

``ctx.cache`` is a folder reserved for this retriever on this corpus, already keyed by the corpus
checksum, the retriever's ``identity()`` and every run-spec setting that applies to its kind; put
resumable artefacts there (embedding shards, indexes). ``identity()`` returns what the spec does
not say but the scores depend on: the model's content hash, resolved lengths, library versions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from retrieval.distributed import Dist

Corpus = Mapping[str, Mapping[str, str]]  # a dict, or a DiskCorpus read lazily
Queries = dict[str, str]
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class IndexContext:
    """Where a retriever may cache, and which process it is.

    ``cache`` is unique per (corpus, retriever identity, applicable settings). Under torchrun a
    retriever with ``distributed = True`` is indexed on every rank (each encodes its share, see
    :class:`retrieval.store.EmbeddingStore`); others are indexed and searched on rank 0 only.
    """

    cache: Path
    corpus_checksum: str
    dist: Dist = Dist()
    desc: str = ""  # a short label for progress bars, e.g. the dataset name
    # The context another retriever gets on this corpus, the one it would get run alone (same cache
    # folder): a retriever built from others (fusion) indexes each of them in its own folder.
    context_for: Callable[[Retriever], IndexContext] | None = None
    # Set when the job drops each query's hit on its own id (ArguAna, Quora; benchmarks.quirks): it
    # then asks ``search`` for k + 1 hits and keeps ``drop_self_hits(run, k)``. A retriever built
    # from others applies it to each of their runs, so it combines the runs they are scored on.
    drop_self_hits: Callable[[Run, int], Run] | None = None


@runtime_checkable
class Retriever(Protocol):
    """A retriever built from others (fusion) also has ``components: tuple[Retriever, ...]``; the
    pipeline names them, with the result key each has on its own, in the result's provenance."""

    kind: str  # "bm25" | "dpr" | "colbert" | any new kind: selects the run-spec settings that key it
    name: str  # display name in tables (derived; never a key)
    distributed: bool  # index() runs on every torchrun rank (it shards its own work)
    # Optional ``exhaustive: bool`` (default False): a run holds exactly the documents the retriever matches to the
    # query (BM25: those sharing a term), so a run shorter than k is complete and metrics deeper than it are still
    # honest, and a query matching nothing retrieves nothing. Otherwise a short run limits the depth a result
    # reports (benchmarks.job.search_run).

    def identity(self) -> dict: ...

    def provenance(self) -> dict: ...

    def index(self, corpus: Corpus, ctx: IndexContext) -> None: ...

    def search(self, queries: Queries, k: int) -> Run: ...
