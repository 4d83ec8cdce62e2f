"""BM25 as a retriever (bm25s, Lucene BM25, English stopwords + Snowball stemming, title + text).

It indexes in memory in seconds, so it keeps nothing in ``ctx.cache``; its result is still
cached and keyed by the pipeline like any other retriever's.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import version

from encoders.bm25 import BM25Config, bm25_search
from encoders.retrievers.protocol import Corpus, IndexContext, Queries, Run


class BM25Retriever:
    kind = "bm25"
    name = "BM25"
    distributed = False  # one process's work

    def __init__(self, cfg: BM25Config = BM25Config()):
        self.cfg = cfg
        self.name = "BM25 [pad]" if cfg.pad_unmatched else "BM25"  # display only; keys come from identity() and the spec
        # Exhaustive: a run holds exactly the documents sharing a term with the query, so a shorter one is complete
        # and a query of unknown words retrieves nothing. Padded (MTEB's bm25s), runs also hold documents that match nothing.
        self.exhaustive = not cfg.pad_unmatched
        self.corpus: Corpus = {}

    def identity(self) -> dict:
        return {"versions": {"bm25s": version("bm25s"), "PyStemmer": version("PyStemmer")}, **asdict(self.cfg)}

    def provenance(self) -> dict:
        c = self.cfg
        unmatched = "padded to k with documents sharing no term (bm25s / MTEB)" if c.pad_unmatched else "matching documents only (Lucene / Pyserini)"
        return {"model_spec": "bm25", "bm25": f"bm25s {version('bm25s')}, {c.method} k1={c.k1} b={c.b}, {c.stopwords} stopwords, snowball {c.stemmer or 'off'} (PyStemmer {version('PyStemmer')}); {unmatched}",
                "bm25_pad": c.pad_unmatched}

    def index(self, corpus: Corpus, ctx: IndexContext) -> None:
        self.corpus = corpus

    def search(self, queries: Queries, k: int) -> Run:
        return bm25_search(self.corpus, queries, min(k, len(self.corpus)), self.cfg)
