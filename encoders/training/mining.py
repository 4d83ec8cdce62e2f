"""Hard-negative mining: rank the corpus for each training query, then pick negatives from a rank window.

Two steps, so the expensive one is cached and the cheap one is a pure function:

1. :func:`mine_pool` ranks the corpus with a retriever (our FAISS index over a dense model, or
   BM25) and keeps, per query, the top ``rank_end + pool_extra`` hits with their scores and the
   scores of the query's positives. Cached as JSON (atomic write) under a key of the model
   identity, the data checksum and the depth.
2. :func:`select_negatives` picks, for one (query, positive) pair, up to ``count`` candidates:
   ranks ``rank_start..rank_end`` (1-based, counted on the full ranking, positives included),
   never a positive of that query, and - the false-negative filter of NV-Retriever
   (Moreira et al. 2024, arXiv 2407.15831, "positive-aware mining", TopK-PercPos) - never a
   candidate scoring above ``pos_score - margin`` or above ``max_ratio * pos_score``.

The scores compared are the miner's own: BM25 scores for ``--mine-method bm25``, the mining
model's cosine for ``dense``. BM25 knows a positive's score only when the positive is in the pool
(top ``rank_end + pool_extra``); a pair whose positive is not has no score filter (counted as
``pos_score_unknown``). With a guide model (GISTEmbed, Solatorio 2024, arXiv 2402.16829), a
candidate the guide scores above the pair's positive is dropped too: :func:`guide_pool` scores
every pooled candidate and positive with the guide (cosine), cached like the pool.

:func:`screen_candidates` says, per hit, which filter removed it (``REASONS``, first that applies);
:func:`negatives_for_pairs` sums those counts over the pairs for the run's log and result file.

Pool format (plain JSON): ``{qid: {"hits": [[doc_id, score], ...best first], "pos": {doc_id: score}}}``.
Guide scores (plain JSON): ``{qid: {doc_id: score}}`` for the pooled hits and the positives.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.bm25 import BM25Config, bm25_search
from encoders.dpr import DenseEncoder, DenseEncoderConfig
from retrieval.beir import doc_text
from retrieval.codeid import fingerprint
from retrieval.dense import build_index, search
from retrieval.flags import flag_field as _f
from retrieval.io import atomic_write_json, cache_key

log = logging.getLogger(__name__)

Pool = dict[str, dict]
GuideScores = dict[str, dict[str, float]]  # {qid: {doc_id: guide score}}


@dataclass(frozen=True)
class MiningConfig:
    """How hard negatives are mined. CLI flags are ``--mine-<field>``."""

    method: str = _f("dense", "dense (FAISS over --mine-model) | bm25 | none (in-batch negatives only)")
    model: str | None = _f(None, "dense mining model (alias, folder); default: the model being trained")
    rank_start: int = _f(10, "first rank (1-based) a negative may come from; ranks above it are too likely unlabelled positives")
    rank_end: int = _f(100, "last rank a negative may come from")
    count: int = _f(4, "negatives per (query, positive) pair; pairs with fewer candidates take what is left past the window, else are dropped")
    margin: float | None = _f(0.0, "drop candidates scoring above pos_score - margin (0: above the positive; unset: no absolute filter)")
    max_ratio: float | None = _f(0.95, "drop candidates scoring above max_ratio * pos_score (NV-Retriever TopK-PercPos uses 0.95; none, 0 or 1: off)")
    pick: str = _f("top", "top (hardest first) | random (seeded sample from the window)")
    pool_extra: int = _f(100, "hits kept past rank_end, used only to fill pairs short of count")
    max_length: int = _f(256, "max tokens per text for the dense mining model")
    batch_size: int = _f(64, "texts per encoding batch when mining")


REASONS = ("qrels_positive", "rank_window", "above_margin", "above_ratio", "guide")  # filters, in the order they are tried


def ratio_on(cfg: MiningConfig) -> bool:
    """Whether the TopK-PercPos filter runs: ``max_ratio`` set and neither 0 nor 1."""
    return cfg.max_ratio is not None and cfg.max_ratio not in (0, 1)


def screen_candidates(
    hits: Sequence[tuple[str, float]],
    positives: Collection[str],
    pos_score: float | None,
    cfg: MiningConfig,
    *,
    guide: Mapping[str, float] | None = None,
    guide_pos: float | None = None,
) -> list[tuple[int, str, str | None]]:
    """``(rank, doc_id, reason)`` per hit (best first, rank 1-based): the first filter of ``REASONS`` removing it, or None (kept).

    ``pos_score``: the miner's score of the pair's positive (None: unknown, no score filter);
    ``guide`` / ``guide_pos``: the guide's scores of the hits and of the positive (None: no guide).

    >>> hits = [("p", .9), ("a", .95), ("b", .86), ("c", .5)]
    >>> [r for _, _, r in screen_candidates(hits, {"p"}, .9, MiningConfig(rank_start=1, margin=0.0, max_ratio=0.95))]
    ['qrels_positive', 'above_margin', 'above_ratio', None]
    """
    out = []
    for rank, (did, score) in enumerate(hits, start=1):
        reason = None
        if did in positives:
            reason = "qrels_positive"
        elif rank < cfg.rank_start:
            reason = "rank_window"
        elif pos_score is not None and cfg.margin is not None and score > pos_score - cfg.margin:
            reason = "above_margin"
        elif pos_score is not None and ratio_on(cfg) and score > cfg.max_ratio * pos_score:
            reason = "above_ratio"
        elif guide is not None and guide_pos is not None and guide.get(did, float("-inf")) > guide_pos:
            reason = "guide"
        out.append((rank, did, reason))
    return out


def pick(screened: Sequence[tuple[int, str, str | None]], cfg: MiningConfig, *, seed: int = 0) -> list[str]:
    """Up to ``cfg.count`` kept candidates: the window's first (best-ranked, or a seeded sample), then those past it."""
    window = [did for rank, did, why in screened if why is None and rank <= cfg.rank_end]
    rest = [did for rank, did, why in screened if why is None and rank > cfg.rank_end]
    if cfg.pick == "random":
        random.Random(seed).shuffle(window)
    elif cfg.pick != "top":
        raise ValueError(f"unknown pick {cfg.pick!r}; choose top or random")
    return (window + rest)[: cfg.count]


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
    return pick(screen_candidates(hits, positives, pos_score, cfg), cfg, seed=seed)


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
    # Padded as bm25s pads (documents sharing no term fill the pool, score 0): the BM25-mined recipes' figures were made so.
    # Evaluation runs return matching documents only (encoders/bm25.py); a training pool is candidates, not a scored run.
    run = bm25_search(corpus, queries, k=pool_depth(cfg), cfg=BM25Config(pad_unmatched=True))
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
        code=fingerprint("encoders.training.mining"),  # a pool mined by other code is never reused (retrieval.codeid)
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
    guide: GuideScores | None = None,
) -> tuple[list[list[str]], dict[str, int]]:
    """One negative list per ``(qid, positive_doc_id)`` pair, and how many pooled candidates each filter removed.

    Every qrels positive of the query is excluded. The counts (keys ``REASONS``, plus
    ``pos_score_unknown``: pairs without a score filter) are summed over pairs: a query with
    several positives screens its pool once per pair.
    """
    out, removed = [], Counter({r: 0 for r in (*REASONS, "pos_score_unknown")})
    for i, (qid, pos) in enumerate(pairs):
        entry = pool.get(qid, {"hits": [], "pos": {}})
        positives = {d for d, s in qrels.get(qid, {}).items() if s > 0}
        pos_score = entry["pos"].get(pos)
        g = guide.get(qid) if guide is not None else None
        screened = screen_candidates([(d, s) for d, s in entry["hits"]], positives, pos_score, cfg, guide=g, guide_pos=None if g is None else g.get(pos))
        removed.update(why for _, _, why in screened if why is not None)
        removed["pos_score_unknown"] += pos_score is None
        out.append(pick(screened, cfg, seed=seed + i))
    return out, dict(removed)


def guide_pool(model, corpus: dict, queries: dict[str, str], qrels: dict[str, dict[str, int]], pool: Pool, *, batch_size: int = 64) -> GuideScores:
    """The guide's cosine of each query with its pooled hits and its positives (GISTEmbed's filter at mining time)."""
    enc = DenseEncoder(model, DenseEncoderConfig(similarity="cos", batch_size=batch_size))
    wanted = {q: {d for d, _ in pool.get(q, {"hits": []})["hits"]} | {d for d, s in qrels.get(q, {}).items() if s > 0 and d in corpus} for q in queries}
    doc_ids = sorted(set().union(*wanted.values())) if wanted else []
    row = {d: i for i, d in enumerate(doc_ids)}
    d_emb = enc.encode_documents([doc_text(corpus[d]) for d in doc_ids])  # (U, dim)
    qids = list(queries)
    q_emb = enc.encode_queries([queries[q] for q in qids])  # (Q, dim)
    return {q: {d: float(q_emb[i] @ d_emb[row[d]]) for d in sorted(wanted[q])} for i, q in enumerate(qids)}


def mine_guide_scores(corpus: dict, queries: dict[str, str], qrels: dict[str, dict[str, int]], pool: Pool, *, load_guide,
                      guide_identity: dict, data_checksum: str, cache_dir: Path, max_length: int) -> GuideScores:
    """:func:`guide_pool`, cached as JSON under a key of the guide, the data and the pooled candidates."""
    key = cache_key(guide=guide_identity, max_length=max_length, data=data_checksum, queries=sorted(queries),
                    pool=sorted((q, tuple(d for d, _ in e["hits"])) for q, e in pool.items()))
    path = Path(cache_dir) / "mining" / f"guide-{key}.json"
    if path.is_file():
        log.info("guide scores from cache: %s", path)
        return json.loads(path.read_text())
    scores = guide_pool(load_guide(), corpus, queries, qrels, pool)
    atomic_write_json(path, scores)
    log.info("guide scores for %d queries written to %s", len(scores), path)
    return scores


def pool_stats(negatives: Sequence[Sequence[str]], count: int) -> dict:
    """How many pairs got the full ``count`` negatives, fewer, none."""
    n = np.array([len(x) for x in negatives])
    return {"pairs": int(len(n)), "full": int((n >= count).sum()), "short": int(((n > 0) & (n < count)).sum()), "none": int((n == 0).sum())}
