"""Single-vector (DPR) retrieval through FAISS: build an index from a spec, search, make a run.

An index spec is either an alias or any FAISS factory string (the whole configuration):

    flat   -> "Flat"                      exact inner product (the default)
    hnsw   -> "HNSW32"                    graph search, efSearch=128
    ivfpq  -> "IVF{nlist},PQ{m}x{b}"      nlist = 4*sqrt(N), m = dim/4, b = 8 bits (fewer for tiny corpora)

Vectors are compared by inner product (embed normalised vectors for cosine).
Free functions over numpy, returning ``(D, I)`` like faiss itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from retrieval import progress
from retrieval.io import atomic_write

ALIASES = ("flat", "hnsw", "ivfpq")


def factory_string(spec: str, n: int, dim: int) -> str:
    """Turn ``flat|hnsw|ivfpq|<factory>`` into a FAISS factory string for ``n`` vectors of ``dim``."""
    if spec == "flat":
        return "Flat"
    if spec == "hnsw":
        return "HNSW32"
    if spec == "ivfpq":
        nlist = max(1, int(4 * math.sqrt(n)))
        nlist = min(nlist, max(1, n // 39))  # FAISS wants >= 39 training points per centroid
        m = next(m for m in (dim // 4, dim // 8, dim // 16, dim // 2, dim) if m > 0 and dim % m == 0)
        nbits = max(1, min(8, int(math.log2(max(2, n // 39)))))  # 2**nbits codes, >= 39 training points each
        return f"IVF{nlist},PQ{m}x{nbits}"
    return spec


def new_index(spec: str, n: int, dim: int) -> faiss.Index:
    """An empty inner-product index for ``spec``.

    FAISS's factory turns on polysemous training for PQ codes; it only serves Hamming pre-filtering
    (which we do not use) and made IVF-PQ training take minutes on a few thousand vectors here, so it is off.
    """
    index = faiss.index_factory(dim, factory_string(spec, n, dim), faiss.METRIC_INNER_PRODUCT)
    for sub in (faiss.try_extract_index_ivf(index), faiss.downcast_index(index)):
        if sub is not None and hasattr(sub, "do_polysemous_training"):
            sub.do_polysemous_training = False
    return index


def build_index(emb: np.ndarray, spec: str = "flat", *, seed: int = 0) -> faiss.Index:
    """Index ``emb`` ``(N, dim)`` float32 under inner product."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n, dim = emb.shape
    index = new_index(spec, n, dim)
    if not index.is_trained:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.seed = seed
        index.train(emb)
    index.add(emb)
    set_search_params(index)
    return index


def build_index_from_shards(shards, n: int, dim: int, spec: str = "flat", *, train_size: int = 100_000, seed: int = 0) -> faiss.Index:
    """Like :func:`build_index`, but adds vectors shard by shard (an iterable of ``(<=S, dim)`` arrays).

    Peak memory is the index plus one shard. Indexes that need training are trained on the first
    ``train_size`` vectors, so call with a fresh iterable factory: ``shards`` must be re-iterable
    (a callable returning an iterator) when training is needed.
    """
    index = new_index(spec, n, dim)
    if not index.is_trained:
        sample, got = [], 0
        for x in shards():
            sample.append(np.ascontiguousarray(x[: train_size - got], dtype=np.float32))
            got += len(sample[-1])
            if got >= train_size:
                break
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.seed = seed
        index.train(np.concatenate(sample))
        del sample
    for x in shards():
        index.add(np.ascontiguousarray(x, dtype=np.float32))
    set_search_params(index)
    return index


def set_search_params(index: faiss.Index, *, nprobe: int | None = None, ef_search: int = 128) -> None:
    """Sensible search-time defaults: HNSW efSearch=128; IVF nprobe = nlist/8 (at least 8)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe or min(ivf.nlist, max(8, ivf.nlist // 8))
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = ef_search


def search(index: faiss.Index, queries: np.ndarray, k: int, *, batch_size: int = 256, desc: str = "search") -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products for ``queries`` ``(Q, dim)`` -> ``D, I`` each ``(Q, k)``; missing hits are ``I == -1``."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, index.ntotal)
    D = np.empty((len(queries), k), dtype=np.float32)
    I = np.empty((len(queries), k), dtype=np.int64)
    for lo in progress.bar(range(0, len(queries), batch_size), desc=desc, unit="batch"):
        D[lo : lo + batch_size], I[lo : lo + batch_size] = index.search(queries[lo : lo + batch_size], k)
    fill_short(index, queries, D, I, k)
    return D, I


def fill_short(index: faiss.Index, queries: np.ndarray, D: np.ndarray, I: np.ndarray, k: int) -> int:
    """Search again, wider, the queries an approximate index gave fewer than ``k`` hits (``I == -1``), in place.

    IVF probes ``nprobe`` lists: a query near small lists gets fewer than k vectors. It is searched
    again with every list probed. HNSW stops at ``efSearch`` candidates; it is searched again with
    ``efSearch = 4k``. Returns the number of queries searched again; any still short stay so, and
    the pipeline limits the depth it reports (:func:`benchmarks.job.search_run`).
    """
    short = np.nonzero((I < 0).any(axis=1))[0] if k <= index.ntotal else np.empty(0, dtype=np.int64)
    if len(short) == 0:
        return 0
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    saved = (ivf.nprobe if ivf is not None else None, hnsw.efSearch if hnsw is not None else None)
    try:
        if ivf is not None:
            ivf.nprobe = ivf.nlist
        if hnsw is not None:
            hnsw.efSearch = max(hnsw.efSearch, 4 * k)
        D[short], I[short] = index.search(queries[short], k)
    finally:
        if ivf is not None:
            ivf.nprobe = saved[0]
        if hnsw is not None:
            hnsw.efSearch = saved[1]
    return len(short)


def to_run(D: np.ndarray, I: np.ndarray, query_ids: list[str], doc_ids: list[str], *, ignore_identical_ids: bool = False, k: int | None = None) -> dict[str, dict[str, float]]:
    """``(D, I)`` -> BEIR run ``{qid: {doc_id: score}}``, at most ``k`` hits per query.

    ``ignore_identical_ids`` drops a hit whose id equals the query id (ArguAna, Quora: the
    query is itself in the corpus). Search one extra hit when using it.
    """
    k = k or I.shape[1]
    run: dict[str, dict[str, float]] = {}
    for qi, qid in enumerate(query_ids):
        hits: dict[str, float] = {}
        for score, di in zip(D[qi], I[qi]):
            if di < 0:
                continue
            did = doc_ids[di]
            if ignore_identical_ids and did == qid:
                continue
            hits[did] = float(score)
            if len(hits) == k:
                break
        run[qid] = hits
    return run


def save_index(index: faiss.Index, path: Path) -> None:
    buf = faiss.serialize_index(index)
    atomic_write(Path(path), lambda f: f.write(buf.tobytes()))


def load_index(path: Path) -> faiss.Index:
    index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
    set_search_params(index)
    return index
