"""Hard-negative mining: rank the corpus for each training query, then pick negatives from a rank window.

Two steps, so the expensive one is cached and the cheap one is a pure function:

1. :func:`mine_pool` ranks the corpus with a retriever (our FAISS index over a dense model, or
   BM25) and keeps, per query, the top ``rank_end + pool_extra`` hits with their scores and the
   scores of the query's positives. Cached as JSON (atomic write) under a key of the model
   identity, the data checksum and the depth.
2. :func:`select_negatives` picks, for one (query, positive) pair, up to ``count`` candidates:
   ranks ``rank_start..rank_end`` (1-based, counted on the full ranking, positives included),
   never a positive of that query, and - the false-negative filter of NV-Retriever
   (Moreira et al. 2024, arXiv 2407.15831, "positive-aware mining") - never a candidate scoring
   above ``pos_score - margin`` or above ``max_ratio * pos_score``.

Pool format (plain JSON): ``{qid: {"hits": [[doc_id, score], ...best first], "pos": {doc_id: score}}}``.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.bm25 import bm25_search
from encoders.dpr import DenseEncoder, DenseEncoderConfig
from retrieval.beir import doc_text
from retrieval.dense import build_index, search
from retrieval.flags import flag_field as _f
from retrieval.io import atomic_write_json, cache_key

log = logging.getLogger(__name__)

Pool = dict[str, dict]


@dataclass(frozen=True)
class MiningConfig:
    """How hard negatives are mined. CLI flags are ``--mine-<field>``."""

    method: str = _f("dense", "dense (FAISS over --mine-model) | bm25 | none (in-batch negatives only)")
    model: str | None = _f(None, "dense mining model (alias, folder); default: the model being trained")
    rank_start: int = _f(10, "first rank (1-based) a negative may come from; ranks above it are too likely unlabelled positives")
    rank_end: int = _f(100, "last rank a negative may come from")
    count: int = _f(4, "negatives per (query, positive) pair; pairs with fewer candidates take what is left past the window, else are dropped")
    margin: float | None = _f(0.0, "drop candidates scoring above pos_score - margin (0: above the positive; unset: no absolute filter)")
    max_ratio: float | None = _f(0.95, "drop candidates scoring above max_ratio * pos_score (NV-Retriever TopK-PercPos uses 0.95; unset: off)")
    pick: str = _f("top", "top (hardest first) | random (seeded sample from the window)")
    pool_extra: int = _f(100, "hits kept past rank_end, used only to fill pairs short of count")
    max_length: int = _f(256, "max tokens per text for the dense mining model")
    batch_size: int = _f(64, "texts per encoding batch when mining")


def select_negatives(
    hits: Sequence[tuple[str, float]],
    positives: Collection[str],
    pos_score: float | None,
    cfg: MiningConfig,
    *,
    seed: int = 0,
) -> list[str]:
    """Pick up to ``cfg.count`` negatives from a ranked list ``hits`` (best first).

    ``pos_score`` is the retriever's score of the positive of this pair (``None``: unknown, no
    score filter). Candidates in the window come first (best-ranked first, or a seeded random
    sample with ``pick="random"``); if the window is short, candidates past it fill up.

    >>> hits = [("p", .9), ("a", .95), ("b", .8), ("c", .7), ("d", .6)]
    >>> select_negatives(hits, {"p"}, .9, MiningConfig(rank_start=2, rank_end=4, count=2, margin=0.05, max_ratio=None))
    ['b', 'c']
    """
    def ok(score: float) -> bool:
        if pos_score is None:
            return True
        if cfg.margin is not None and score > pos_score - cfg.margin:
            return False
        if cfg.max_ratio is not None and score > cfg.max_ratio * pos_score:
            return False
        return True

    window, rest = [], []
    for rank, (did, score) in enumerate(hits, start=1):
        if did in positives or rank < cfg.rank_start or not ok(score):
            continue
        (window if rank <= cfg.rank_end else rest).append(did)
    if cfg.pick == "random":
        random.Random(seed).shuffle(window)
    elif cfg.pick != "top":
        raise ValueError(f"unknown pick {cfg.pick!r}; choose top or random")
    return (window + rest)[: cfg.count]


def pool_depth(cfg: MiningConfig) -> int:
    return cfg.rank_end + cfg.pool_extra


def dense_pool(model, corpus: dict, queries: dict[str, str], qrels: dict[str, dict[str, int]], cfg: MiningConfig) -> Pool:
    """Rank ``corpus`` for ``queries`` with a SentenceTransformer through our flat FAISS index (cosine)."""
    model.max_seq_length = min(cfg.max_length, model.max_seq_length or cfg.max_length)
    enc = DenseEncoder(model, DenseEncoderConfig(similarity="cos", batch_size=cfg.batch_size))
    doc_ids = list(corpus)
    d_emb = enc.encode_documents([doc_text(corpus[d]) for d in doc_ids])  # (N, dim)
    qids = list(queries)
    q_emb = enc.encode_queries([queries[q] for q in qids])  # (Q, dim)
    D, I = search(build_index(d_emb), q_emb, pool_depth(cfg), desc="mining")  # (Q, depth) each
    row = {d: i for i, d in enumerate(doc_ids)}
    pool: Pool = {}
    for qi, qid in enumerate(qids):
        pos = {d: float(q_emb[qi] @ d_emb[row[d]]) for d, s in qrels.get(qid, {}).items() if s > 0 and d in row}
        pool[qid] = {"hits": [[doc_ids[i], float(s)] for s, i in zip(D[qi], I[qi]) if i >= 0], "pos": pos}
    return pool


def bm25_pool(corpus: dict, queries: dict[str, str], qrels: dict[str, dict[str, int]], cfg: MiningConfig) -> Pool:
    """Rank ``corpus`` with BM25 (encoders/bm25.py). A positive's score is known only if it is in the pool."""
    run = bm25_search(corpus, queries, k=pool_depth(cfg))
    pool: Pool = {}
    for qid, hits in run.items():
        ranked = sorted(hits.items(), key=lambda kv: -kv[1])
        pos = {d: hits[d] for d, s in qrels.get(qid, {}).items() if s > 0 and d in hits}
        pool[qid] = {"hits": [[d, float(s)] for d, s in ranked], "pos": pos}
    return pool


def mine_pool(
    corpus: dict,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    cfg: MiningConfig,
    *,
    data_checksum: str,
    cache_dir: Path,
    load_model=None,
    model_identity: dict | None = None,
) -> Pool:
    """The cached candidate pool for ``queries``; ``load_model()`` gives the dense model (called only on a miss)."""
    if cfg.method not in ("dense", "bm25"):
        raise ValueError(f"unknown mining method {cfg.method!r}; choose dense, bm25 or none")
    key = cache_key(
        method=cfg.method,
        model=model_identity if cfg.method == "dense" else None,
        max_length=cfg.max_length if cfg.method == "dense" else None,
        data=data_checksum,
        queries=sorted(queries),
        depth=pool_depth(cfg),
    )
    path = Path(cache_dir) / "mining" / f"{cfg.method}-{key}.json"
    if path.is_file():
        log.info("mined pool from cache: %s", path)
        return json.loads(path.read_text())
    if cfg.method == "dense":
        pool = dense_pool(load_model(), corpus, queries, qrels, cfg)
    else:
        pool = bm25_pool(corpus, queries, qrels, cfg)
    atomic_write_json(path, pool)
    log.info("mined pool for %d queries written to %s", len(pool), path)
    return pool


def negatives_for_pairs(
    pairs: Sequence[tuple[str, str]],
    pool: Pool,
    qrels: dict[str, dict[str, int]],
    cfg: MiningConfig,
    *,
    seed: int = 0,
) -> list[list[str]]:
    """One negative list per ``(qid, positive_doc_id)`` pair; every qrels positive of the query is excluded."""
    out = []
    for i, (qid, pos) in enumerate(pairs):
        entry = pool.get(qid, {"hits": [], "pos": {}})
        positives = {d for d, s in qrels.get(qid, {}).items() if s > 0}
        out.append(select_negatives([(d, s) for d, s in entry["hits"]], positives, entry["pos"].get(pos), cfg, seed=seed + i))
    return out


def pool_stats(negatives: Sequence[Sequence[str]], count: int) -> dict:
    """How many pairs got the full ``count`` negatives, fewer, none."""
    n = np.array([len(x) for x in negatives])
    return {"pairs": int(len(n)), "full": int((n >= count).sum()), "short": int(((n > 0) & (n < count)).sum()), "none": int((n == 0).sum())}
