"""BM25 over ``title + " " + text`` with bm25s (Lucene BM25, k1=1.5, b=0.75), English stopwords and Snowball stemming.

The same settings as MTEB's ``mteb/baseline-bm25s`` model, so scores are comparable with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import bm25s
import Stemmer

from retrieval import progress
from retrieval.beir import Corpus, Queries, doc_text

Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class BM25Config:
    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str = "en"
    stemmer: str = "english"  # Snowball language for PyStemmer; "" disables stemming


class BM25Index:
    """A bm25s index over ``texts`` (row i = ``texts[i]``) and the one tokeniser its queries must use."""

    def __init__(self, texts: list[str], cfg: BM25Config = BM25Config()):
        stemmer = Stemmer.Stemmer(cfg.stemmer) if cfg.stemmer else None
        self.tok = dict(stopwords=cfg.stopwords, stemmer=stemmer, show_progress=False)
        self.bm25 = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.method)
        self.bm25.index(bm25s.tokenize(texts, **self.tok), show_progress=False)

    def query_tokens(self, queries: list[str]):
        """Strings (not ids), so the query vocabulary maps onto the corpus vocabulary."""
        return bm25s.tokenize(queries, return_ids=False, **self.tok)


def bm25_search(corpus: Corpus, queries: Queries, k: int, cfg: BM25Config = BM25Config(), *, ignore_identical_ids: bool = False) -> Run:
    """Rank ``corpus`` for each query; returns a BEIR run with at most ``k`` hits per query."""
    doc_ids = list(corpus)
    index = BM25Index([doc_text(corpus[d]) for d in doc_ids], cfg)
    retriever = index.bm25
    qids = list(queries)
    query_tokens = index.query_tokens([queries[q] for q in qids])
    kk = min(len(doc_ids), k + int(ignore_identical_ids))
    idx, scores = retriever.retrieve(query_tokens, k=kk, show_progress=progress.enabled(), n_threads=0)
    run: Run = {}
    for qi, qid in enumerate(qids):
        hits: dict[str, float] = {}
        for di, s in zip(idx[qi], scores[qi]):
            did = doc_ids[int(di)]
            if ignore_identical_ids and did == qid:
                continue
            hits[did] = float(s)
            if len(hits) == k:
                break
        run[qid] = hits
    return run
