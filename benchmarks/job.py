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
from retrieval.distributed import Dist
from retrieval.io import cache_key
from retrieval.metrics import trec_order
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
        settings = self.spec.settings(retriever.kind, ("model", "encoding"))
        return cache_key(kind=retriever.kind, corpus=corpus_checksum, identity=retriever.identity(), settings=settings)

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


def drop_self_hits(run: Run, k: int) -> Run:
    """Drop each query's hit on the document with its own id, then keep its ``k`` best.

    >>> drop_self_hits({"q1": {"q1": 3.0, "d1": 2.0, "d2": 1.0}}, 1)
    {'q1': {'d1': 2.0}}
    """
    return {qid: dict(trec_order({d: s for d, s in hits.items() if d != qid})[:k]) for qid, hits in run.items()}
