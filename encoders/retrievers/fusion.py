"""Fusion as a retriever: ``--models bm25+minilm`` (RRF), ``bm25*0.3+minilm*0.7`` (weighted sum).

A :class:`FusionRetriever` holds its components, retrievers built exactly as a ``--models`` entry
of that name is built alone (``benchmarks.models``), and fuses their runs with
:func:`retrieval.fusion.fuse` (formulas, tie order and the ranx agreement are documented there).

Nothing is computed twice:

* ``index``: each component is indexed in the cache folder it has when run alone
  (``ctx.context_for``), so the embeddings of a plain ``--models minilm`` run serve the fusion and
  the other way round. Under torchrun a distributed component is indexed on every rank, the others
  on rank 0, as the job indexes plain retrievers.
* ``search``: each component's run at the depth asked is cached in its own folder,
  ``run-<key>.json`` (full-precision JSON, written atomically), keyed by the queries, the depth and
  the run-spec settings of the component's kind; a second fusion of the same components with
  another method, normalisation or weights searches nothing.

Depth, ties and self-hits. ``search(queries, k)`` fuses each component's top ``k`` together with
every document tied with its k-th (:func:`encoders.retrievers.search.search_deep`, then
:func:`retrieval.ranking.tie_closed`): which tied documents enter a component's run never depends
on their ids, and RRF gives tied documents their group's mean rank (:mod:`retrieval.fusion`), so
renaming ids moves a fused score nowhere. The pipeline asks every retriever for at least its
depth floor (``benchmarks.job.SEARCH_FLOOR``), so a fusion reported at ``--top-k 10`` fuses the
same component runs as one at ``--top-k 1000``. Where the job drops each query's hit on its own
id (``ctx.drop_self_hits``: ArguAna, Quora), the fusion drops it from each component's run before
fusing: a self-hit never sets a minmax bound or shifts an RRF rank.

    >>> resolve(FusionConfig(), None), resolve(FusionConfig(), [0.3, 0.7])
    (('rrf', 'none', 60), ('wsum', 'minmax', None))
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from encoders.retrievers.config import FusionConfig
from encoders.retrievers.dense import texts_key
from encoders.retrievers.protocol import Corpus, IndexContext, Queries, Retriever, Run
from encoders.retrievers.search import search_deep
from retrieval.fusion import METHODS, fuse
from retrieval.io import atomic_write_text, cache_key
from retrieval.ranking import tie_closed

log = logging.getLogger(__name__)


def resolve(cfg: FusionConfig, weights: Sequence[float] | None) -> tuple[str, str, int | None]:
    """``(method, norm, rrf k)`` for one entry: the defaults filled in (rrf, wsum when weighted; the
    method's own norm), k None unless the method reads ranks. Checks ``retrieval.fusion``'s rules
    (weights only with wsum, no norm with rrf, k >= 0) before anything runs."""
    method = cfg.fusion or ("rrf" if weights is None else "wsum")
    norm = cfg.norm or METHODS[method].default_norm
    fuse([{}] * max(2, len(weights or ())), method, weights=weights, norm=norm, k=cfg.rrf_k)  # empty runs: only the checks run
    return method, norm, cfg.rrf_k if METHODS[method].on_ranks else None


@dataclass(frozen=True)
class Component:
    retriever: Retriever
    settings: dict  # the run-spec settings that apply to its kind (RunSpec.settings(kind)), passed in: encoders/ never reads the spec
    weight: float | None = None  # wsum only


class FusionRetriever:
    kind = "fusion"

    def __init__(self, entry: str, parts: Sequence[Component], cfg: FusionConfig):
        weights = [p.weight for p in parts]
        self.weights = None if weights[0] is None else weights
        try:
            self.method, self.norm, self.rrf_k = resolve(cfg, self.weights)
        except ValueError as e:
            raise ValueError(f"--models {entry!r}: {e}") from None
        self.entry, self.parts, self.fuse_k = entry, tuple(parts), cfg.rrf_k  # fuse_k: what fuse() is passed (unused, unkeyed unless rrf)
        self.components = tuple(p.retriever for p in parts)  # read by the pipeline for provenance
        self.distributed = any(r.distributed for r in self.components)
        self.exhaustive = all(getattr(r, "exhaustive", False) for r in self.components)  # short fused runs only from exhaustive components
        label = [self.method] + ([self.norm] if self.norm != METHODS[self.method].default_norm else []) + ([f"k={self.rrf_k}"] if self.rrf_k not in (None, 60) else [])
        self.name = "+".join(p.retriever.name + ("" if p.weight is None else f"*{p.weight:g}") for p in parts) + f" ({', '.join(label)})"
        self.timings: dict = {}

    def identity(self) -> dict:
        return {"method": self.method, "norm": self.norm, "k": self.rrf_k, "weights": self.weights,
                "components": [{"kind": p.retriever.kind, "identity": p.retriever.identity(), "settings": p.settings} for p in self.parts]}

    def provenance(self) -> dict:
        return {"model_spec": self.entry, "fusion": {"method": self.method, "norm": self.norm, "k": self.rrf_k, "weights": self.weights}, "timings": self.timings}

    def index(self, corpus: Corpus, ctx: IndexContext) -> None:
        if ctx.context_for is None:
            raise ValueError(f"{self.name}: the index context has no context_for; fusion runs through the pipeline's Contexts (benchmarks.job)")
        self.ctx, self.timings, self.n_docs = ctx, {"component_runs_searched": 0, "component_runs_cached": 0}, len(corpus)
        self.contexts: list[IndexContext | None] = []
        for r in self.components:
            if not (r.distributed or ctx.dist.is_main):
                self.contexts.append(None)  # indexed and searched on rank 0 only
                continue
            own = ctx.context_for(r)
            r.index(corpus, own)
            self.contexts.append(own)

    def search(self, queries: Queries, k: int) -> Run:
        runs = [self._run(p, own, queries, k) for p, own in zip(self.parts, self.contexts)]
        if self.ctx.drop_self_hits is not None:  # each component's run without the query's own document (module docstring)
            runs = [{q: {d: s for d, s in hits.items() if d != q} for q, hits in run.items()} for run in runs]
        t = time.perf_counter()
        fused = fuse(runs, self.method, weights=self.weights, norm=self.norm, k=self.fuse_k, depth=k)
        self.timings["fuse_s"] = time.perf_counter() - t
        return fused

    def _run(self, part: Component, own: IndexContext, queries: Queries, k: int) -> Run:
        """The component's tie-closed top ``k``: from its folder's cache, else searched and cached (atomically, floats exact)."""
        qids = list(queries)
        path = own.cache / f"run-{cache_key(queries=texts_key(qids, [queries[q] for q in qids]), k=k, settings=part.settings, closed=True)}.json"
        if path.is_file():
            try:
                run = json.loads(path.read_text())["run"]
                self.timings["component_runs_cached"] += 1
                return run
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                log.warning("%s: unreadable cached run (%s); searching again", path, e)
        found, _ = search_deep(part.retriever, queries, k + 1, self.n_docs, close_at=k)
        run = {q: {d: float(s) for d, s in hits.items()} for q, hits in tie_closed(found, k).items()}
        self.timings["component_runs_searched"] += 1
        atomic_write_text(path, json.dumps({"retriever": part.retriever.name, "kind": part.retriever.kind, "k": k, "run": run}))  # json writes repr(float): exact round trip
        return run
