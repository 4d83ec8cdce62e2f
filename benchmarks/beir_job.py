"""A BEIR dataset as a pipeline job: load and validate, index, search, score with pytrec_eval."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, fields
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

from benchmarks.job import Contexts, Scored, Searched, drop_self_hits, search_run
from benchmarks.quirks import SelfHits, data_quirks, decide_self_hits
from encoders.retrievers.protocol import Retriever
from retrieval.beir import BeirDataset, Ordered, content_order, load_beir, text_order
from retrieval.distributed import Dist
from retrieval.metrics import MetricSpec, compact, score
from retrieval.ranking import tied_queries

log = logging.getLogger(__name__)


class BeirJob:
    """One split of a BEIR folder. ``name`` is the display name (the folder's name when given a path)."""

    def __init__(self, name: str, folder: Path, *, split: str, task: str, top_k: int, ignore_identical_ids: str = "auto", stream: bool = False):
        self.folder, self.split, self.task, self.top_k, self.stream = Path(folder), split, task, top_k, stream
        self.dataset = name if "/" not in name else self.folder.name
        self.force_self_hits = ignore_identical_ids

    def identity(self) -> dict:
        # the self-hit decision needs the loaded data anyway, so the key takes the checksum load_beir computed (hashed once)
        return {"dataset": self.ds.checksum, "split": self.split, "ignore_identical_ids": self.self_hits.drop, "metrics": asdict(MetricSpec()),
                "versions": {"pytrec-eval-terrier": version("pytrec-eval-terrier")}}

    @cached_property
    def self_hits(self) -> SelfHits:
        ds = self.ds
        rule = decide_self_hits(ds.corpus, ds.queries, ds.qrels, self.force_self_hits)
        if rule.drop or rule.shared_ids:
            log.info("%s: %s self-hits: %s", ds.name, "dropping" if rule.drop else "keeping", rule.reason)
        return rule

    @cached_property
    def ds(self) -> BeirDataset:
        t = time.perf_counter()
        ds = load_beir(self.folder, self.split, name=self.dataset, stream=self.stream)
        self.load_s = time.perf_counter() - t
        log.info("%s/%s: %d docs, %d queries with qrels (checksum %s)", ds.name, self.split, len(ds.corpus), len(ds.queries), ds.checksum[:12])
        return ds

    @cached_property
    def corpus(self) -> Ordered:
        """The corpus in content order (:func:`retrieval.beir.content_order`): a permuted or renamed copy indexes alike."""
        return Ordered(self.ds.corpus, content_order(self.ds.corpus))

    @cached_property
    def quirks(self) -> dict:
        ds = self.ds
        return data_quirks(ds.corpus, ds.queries, ds.qrels)

    def evaluate(self, retriever: Retriever, contexts: Contexts, dist: Dist) -> Scored | None:
        ds = self.ds
        timings: dict[str, float] = {"load_data_s": self.load_s}
        t = time.perf_counter()
        corpus = self.corpus
        if retriever.distributed or dist.is_main:
            retriever.index(corpus, contexts(retriever, ds.corpus_checksum, ds.name, drop_self_hits if self.self_hits.drop else None))  # a fusion drops them per component
        if not dist.is_main:
            return None  # this rank's share of the work is on disk; rank 0 searches
        timings["index_total_s"] = time.perf_counter() - t
        t = time.perf_counter()
        searched = search_run(retriever, ds.queries, self.top_k, corpus, drop=drop_self_hits if self.self_hits.drop else None)
        run = searched.run
        timings["search_total_s"] = time.perf_counter() - t
        t = time.perf_counter()
        depth = self.top_k if searched.depth is None else min(self.top_k, searched.depth)
        metrics, per_query = score(ds.qrels, run, depth=depth)  # no metric deeper than the run
        timings["metrics_s"] = time.perf_counter() - t
        rule = self.self_hits
        prov = {"dataset_path": str(ds.path), "dataset_checksum": ds.checksum, "corpus_checksum": ds.corpus_checksum, "top_k": self.top_k,
                "ignore_identical_ids": rule.drop, "self_hits": asdict(rule), **self.quirks, **run_quirks(run, searched, self.top_k, MetricSpec().within(depth)),
                "queries_without_text": ds.queries_without_text}
        return Scored(metrics, len(ds.qrels), len(ds.corpus), prov, timings, run, compact(per_query, text_order(ds.queries)))


def run_quirks(run: dict, searched: Searched, top_k: int, spec: MetricSpec) -> dict:
    """What a reader of the scores should know about the run itself: how it was searched, its ties, what was not reported.

    ``tied_queries``: per reported cutoff, the queries with an exact score tie within their top c + 1
    hits; only their metric at that cutoff can move when document ids are renamed (trec_eval breaks
    ties by id). ``metrics_not_reported``: cutoffs deeper than every query's run goes.
    """
    cutoffs = sorted({k for f in fields(spec) for k in getattr(spec, f.name)})
    dropped = [m for m in MetricSpec().names() if m not in spec.names()]
    return {"search": searched.info(top_k), "empty_queries": len(searched.empty), "tied_queries": tied_queries(run, cutoffs), "metrics_not_reported": dropped}

