"""A BEIR dataset as a pipeline job: load and validate, index, search, score with pytrec_eval."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

from benchmarks.job import Contexts, Scored, drop_self_hits
from benchmarks.quirks import SelfHits, data_quirks, decide_self_hits
from encoders.retrievers.protocol import Retriever
from retrieval.beir import BeirDataset, load_beir
from retrieval.distributed import Dist
from retrieval.metrics import MetricSpec, compact, score

log = logging.getLogger(__name__)


class BeirJob:
    """One split of a BEIR folder. ``name`` is the display name (the folder's name when given a path)."""

    def __init__(self, name: str, folder: Path, *, split: str, task: str, top_k: int, ignore_identical_ids: str = "auto", stream: bool = False):
        self.folder, self.split, self.task, self.top_k, self.stream = Path(folder), split, task, top_k, stream
        self.dataset = name if "/" not in name else self.folder.name
        self.force_self_hits = ignore_identical_ids

    def identity(self) -> dict:
        # the self-hit decision needs the loaded data anyway, so the key takes the checksum load_beir computed (hashed once)
        return {"dataset": self.ds.checksum, "split": self.split, "ignore_identical_ids": self.self_hits.drop, "metrics": asdict(MetricSpec())}

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
    def quirks(self) -> dict:
        ds = self.ds
        return data_quirks(ds.corpus, ds.queries, ds.qrels)

    def evaluate(self, retriever: Retriever, contexts: Contexts, dist: Dist) -> Scored | None:
        ds = self.ds
        timings: dict[str, float] = {"load_data_s": self.load_s}
        t = time.perf_counter()
        if retriever.distributed or dist.is_main:
            retriever.index(ds.corpus, contexts(retriever, ds.corpus_checksum, ds.name, drop_self_hits if self.self_hits.drop else None))  # a fusion drops them per component
        if not dist.is_main:
            return None  # this rank's share of the work is on disk; rank 0 searches
        timings["index_total_s"] = time.perf_counter() - t
        t = time.perf_counter()
        k, drop = min(self.top_k, len(ds.corpus)), self.self_hits.drop
        run = retriever.search(ds.queries, k + int(drop))
        if drop:
            run = drop_self_hits(run, k)
        timings["search_total_s"] = time.perf_counter() - t
        t = time.perf_counter()
        metrics, per_query = score(ds.qrels, run, depth=self.top_k)  # no metric deeper than the run
        timings["metrics_s"] = time.perf_counter() - t
        rule = self.self_hits
        prov = {"dataset_path": str(ds.path), "dataset_checksum": ds.checksum, "corpus_checksum": ds.corpus_checksum, "top_k": self.top_k,
                "ignore_identical_ids": rule.drop, "self_hits": asdict(rule), **self.quirks}
        return Scored(metrics, len(ds.qrels), len(ds.corpus), prov, timings, run, compact(per_query))

