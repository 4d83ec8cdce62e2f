"""Multi-vector (ColBERT) search backends over one :class:`~retrieval.token_store.TokenStore`.

Every backend has the same two verbs, like a FAISS index:

    index.build(store)                  # train / load from its cache path
    D, I = index.search(queries, k)     # queries: list of (Lq_i, dim) -> D, I (Q, k); I = document numbers, -1 = no hit

Backends (``BACKENDS`` maps the names):

* ``exact``: brute-force MaxSim over every document, streamed from the store in chunks
  (:func:`retrieval.maxsim.maxsim_search`). Ground truth.
* ``faiss``: ColBERTv1 end-to-end retrieval (Khattab & Zaharia 2020, sec. 3.6). Every
  document token goes into one FAISS index (IVF-PQ by default; any factory string). Each
  query token fetches its ``k_tokens`` nearest document tokens; their documents are the
  candidates. Candidates are pruned to ``max(k, n_rerank)`` by an approximate score built
  from the fetched similarities alone, a missing (query token, document) similarity imputed
  by that query token's ``k_tokens``-th score (XTR, Lee et al. 2023, sec. 3.2), then
  rescored by exact MaxSim from the float16 store. Every returned score is exact. A query
  whose fetched tokens belong to fewer than k documents is searched exactly instead
  (:func:`fill_short`), so no run is shorter than k without a word.
* ``plaid``: PyLate's PLAID (fast-plaid; Santhanam et al. 2022, "PLAID") built from the
  same stored embeddings. By default PLAID only proposes candidates (its top ``n_rerank``)
  and they are rescored by exact MaxSim from the float16 store, as for ``faiss``: PLAID's
  own scores come from 4-bit residuals, which reorder near-ties. ``rerank=False`` returns
  PLAID's own scores.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np
import torch

from retrieval import dense
from retrieval.maxsim import NEG_INF, maxsim_flat, maxsim_search, pad_queries
from retrieval.io import atomic_write, atomic_write_json
from retrieval.token_codec import nlist_for
from retrieval.token_store import TokenStore

log = logging.getLogger(__name__)


class MultiVectorIndex(Protocol):
    def build(self, store: TokenStore) -> None: ...

    def search(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _empty(Q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((Q, k), NEG_INF, dtype=np.float32), np.full((Q, k), -1, dtype=np.int64)


def fill_short(store: TokenStore, queries: list[np.ndarray], D: np.ndarray, I: np.ndarray, k: int, *, chunk_tokens: int = 1 << 16) -> int:
    """Give every query whose candidates yielded fewer than ``min(k, documents)`` hits its exact top ``k`` instead (in place).

    A candidate generator (FAISS token fetches, PLAID's probes) can propose fewer documents than k:
    the fetched tokens may belong to few documents (queries repeating a few vectors, as [MASK]
    expansion does). Such a run is not silently short: those queries are scored by exact MaxSim over
    the whole store, streamed in chunks, and their rows replaced. Returns how many were filled.
    """
    want = min(k, len(store))
    short = [qi for qi in range(len(queries)) if int((I[qi] >= 0).sum()) < want]
    if short:
        q, q_mask = pad_queries([queries[qi] for qi in short])
        d, i = maxsim_search(q, q_mask, store.chunks(chunk_tokens), k)
        D[short], I[short] = d, i
        log.info("%d of %d queries had fewer than %d candidates: searched exactly over all %d documents", len(short), len(queries), want, len(store))
    return len(short)


def rescore(store: TokenStore, query: np.ndarray, cands: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim of one query ``(Lq, dim)`` against candidate documents ``(C,)`` from the store -> best ``k`` (scores, documents), descending."""
    q, q_mask = pad_queries([query])
    tokens, lengths = store.gather(cands, dtype=np.float32)
    scores = maxsim_flat(q, q_mask, torch.from_numpy(tokens), torch.from_numpy(lengths))[0].numpy()
    order = np.argsort(-scores, kind="stable")[:k]
    return scores[order], cands[order]


# --- exact ---------------------------------------------------------------------------------
@dataclass
class ExactIndex:
    """Brute-force MaxSim: no index; search streams the store (``chunk_tokens`` tokens at a time)."""

    chunk_tokens: int = 1 << 16  # float32 chunk = 32 MiB at dim 128; scores = query_batch*Lq*chunk_tokens*4 B
    query_batch: int = 32

    def build(self, store: TokenStore) -> None:
        self.store = store

    def search(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        q, q_mask = pad_queries(queries)
        return maxsim_search(q, q_mask, self.store.chunks(self.chunk_tokens), k, query_batch=self.query_batch)


# --- faiss (ColBERTv1 end to end) --------------------------------------------------------
def default_token_factory(n_tokens: int, dim: int) -> str:
    """IVF-PQ for ``n_tokens`` token vectors: nlist = power of two nearest sqrt(n) (>= 1, <= n/39), PQ with 8 dims per sub-quantizer (ColBERTv1: 16 one-byte codes for dim 128)."""
    nlist = nlist_for(n_tokens)  # the compressed stores' rule too
    m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m > 0 and dim % m == 0)  # 128 -> 16 bytes, as in ColBERTv1
    return f"IVF{nlist},PQ{m}x8"


def sample_tokens(store: TokenStore, n: int, seed: int) -> np.ndarray:
    """``n`` token vectors drawn uniformly without replacement, float32 ``(n, dim)``; reads one shard at a time."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(store.num_tokens, size=min(n, store.num_tokens), replace=False))
    out = np.empty((len(pick), store.dim), dtype=np.float32)  # filled in place: never the sample twice
    first = pos = 0
    for s in range(store.num_shards_open):
        t = store.shard_tokens(s)
        sel = pick[(pick >= first) & (pick < first + len(t))] - first
        out[pos : pos + len(sel)] = t[sel]
        pos += len(sel)
        first += len(t)
    return out


def reserve_lists(index: faiss.Index, store: TokenStore, chunk_tokens: int) -> bool:
    """Size an empty IVF index's inverted lists for the store's tokens before adding them (one assignment pass).

    Filled by appends, each list's buffer doubles as it grows: the lists end with up to twice the
    memory they hold, and the freed buffers fragment the heap, so the build's peak was 2-4x the index
    (1M documents: 3.2 GiB for a 735 MiB index). Reserved first, the build holds the index and one
    chunk. The index is the same either way. Returns False (nothing done) for a non-IVF index.
    """
    ivf = faiss.try_extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    if ivf is None or ivf.ntotal or not isinstance(lists, faiss.ArrayInvertedLists):
        return False
    counts = np.zeros(ivf.nlist, dtype=np.int64)
    for _, tokens, _ in store.chunks(chunk_tokens):
        counts += np.bincount(ivf.quantizer.assign(np.asarray(tokens, dtype=np.float32), 1).ravel(), minlength=ivf.nlist)
    for l in np.nonzero(counts)[0].tolist():
        lists.resize(l, int(counts[l]))  # allocates the list's final size ...
        lists.resize(l, 0)  # ... and keeps it as capacity for the appends
    return True


@dataclass
class FaissTokenIndex:
    """ColBERTv1-style candidate generation through a FAISS token index, then exact MaxSim."""

    factory: str | None = None  # None: default_token_factory(n_tokens, dim)
    k_tokens: int = 128  # k': nearest document tokens fetched per query token
    nprobe: int | None = None  # None: nlist / 16 (at least 8)
    n_rerank: int = 512  # candidates rescored exactly: max(k, n_rerank); 512 with k_tokens=128: top-10 overlap 0.975 with exact on SciFact
    train_per_centroid: int = 64  # k-means training sample = this * nlist tokens (at least 50k)
    seed: int = 0
    add_chunk_tokens: int = 1 << 16  # tokens converted to float32 and added at a time (32 MiB at dim 128)
    omp_threads: int | None = None  # FAISS OpenMP threads; 1 is several times faster on an oversubscribed CPU
    cache_path: Path | None = None  # where the trained, filled index is kept

    def build(self, store: TokenStore) -> None:
        if self.omp_threads:
            faiss.omp_set_num_threads(self.omp_threads)
        self.store = store
        self.factory_used = self.factory or default_token_factory(store.num_tokens, store.dim)
        t = time.perf_counter()
        if self.cache_path is not None and Path(self.cache_path).is_file():
            self.index = faiss.read_index(str(self.cache_path))  # straight from the file: no second copy in memory
            self.loaded_from_cache = True
        else:
            self.index = self._train_and_add(store)
            self.loaded_from_cache = False
            if self.cache_path is not None:  # streamed to the file in FAISS's own chunks (a serialized copy would double the index in memory)
                atomic_write(Path(self.cache_path), lambda f: faiss.write_index(self.index, faiss.PyCallbackIOWriter(f.write)))
        ivf = faiss.try_extract_index_ivf(self.index)
        self.nprobe_used = None
        if ivf is not None:
            ivf.nprobe = self.nprobe_used = min(ivf.nlist, self.nprobe or max(8, ivf.nlist // 16))
        self.build_s = time.perf_counter() - t

    def _train_and_add(self, store: TokenStore) -> faiss.Index:
        index = dense.new_index(self.factory_used, store.num_tokens, store.dim)  # inner product, no polysemous training
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index)
            nlist = ivf.nlist if ivf is not None else 256
            if ivf is not None:
                ivf.cp.seed = self.seed
                ivf.cp.niter = 10  # candidates are rescored exactly, so coarse k-means need not converge
            coder = faiss.downcast_index(ivf if ivf is not None else index)
            if getattr(coder, "pq", None) is not None:  # faiss' k-means is slow in a PQ's tiny sub-spaces: 10 iterations, <= 64 points per code
                coder.pq.cp.niter, coder.pq.cp.max_points_per_centroid, coder.pq.cp.seed = 10, 64, self.seed
            train = sample_tokens(store, max(50_000, self.train_per_centroid * nlist), self.seed)
            index.train(train)
            del train
        reserve_lists(index, store, self.add_chunk_tokens)
        for _, tokens, _ in store.chunks(self.add_chunk_tokens):  # never more than one chunk in float32
            index.add(np.asarray(tokens, dtype=np.float32))
        return index

    def index_bytes(self) -> int:
        """The index's size as written (its cache file; else counted by a writer that keeps nothing)."""
        if self.cache_path is not None and Path(self.cache_path).is_file():
            return Path(self.cache_path).stat().st_size
        n = 0

        def count(b: bytes) -> int:
            nonlocal n
            n += len(b)
            return len(b)

        faiss.write_index(self.index, faiss.PyCallbackIOWriter(count))
        return n

    def search(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        D, I = _empty(len(queries), k)
        kt = min(self.k_tokens, self.index.ntotal)
        for qi, emb in enumerate(queries):
            emb = np.ascontiguousarray(emb, dtype=np.float32)  # (Lq, dim)
            tok_s, tok_i = self.index.search(emb, kt)  # (Lq, k')
            cands, approx = self._candidates(tok_s, tok_i)
            if len(cands) == 0:
                continue
            keep = cands[np.argsort(-approx, kind="stable")[: max(k, self.n_rerank)]]
            scores, docs = rescore(self.store, emb, keep, k)
            D[qi, : len(docs)], I[qi, : len(docs)] = scores, docs
        self.filled = fill_short(self.store, queries, D, I, k)  # fewer candidates than k: exact MaxSim, never a short run
        return D, I

    def _candidates(self, tok_s: np.ndarray, tok_i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fetched tokens ``(Lq, k')`` -> candidate documents ``(C,)`` and their approximate MaxSim ``(C,)``.

        approx(d) = sum_i max_{fetched tokens j of d for query token i} s_ij, where a query token
        that fetched no token of d counts its lowest fetched score (an upper bound on the truth
        for exact fetches, XTR's imputation).
        """
        ok = tok_i >= 0  # (Lq, k')
        docs = np.where(ok, self.store.token_to_doc(np.where(ok, tok_i, 0)), -1)  # (Lq, k')
        cands, inv = np.unique(docs[ok], return_inverse=True)  # (C,)
        floor = np.where(ok, tok_s, np.inf).min(axis=1)  # (Lq,) the k'-th score per query token
        best = np.tile(floor[:, None], (1, len(cands)))  # (Lq, C)
        rows = np.nonzero(ok)[0]
        np.maximum.at(best, (rows, inv), tok_s[ok])
        best[~np.isfinite(best)] = 0.0  # a query token that fetched nothing adds nothing
        return cands, best.sum(axis=0)


# --- plaid (PyLate / fast-plaid) ----------------------------------------------------------
@dataclass
class PlaidIndex:
    """PyLate's ``pylate.indexes.PLAID`` (fast-plaid backend) over the stored embeddings."""

    folder: Path | None = None  # cache folder (a temporary one when None)
    nbits: int = 4
    kmeans_niters: int = 4
    n_samples_kmeans: int | None = None  # None: fast-plaid's own choice
    n_ivf_probe: int = 8
    n_full_scores: int = 8192
    seed: int = 42
    show_progress: bool = False
    rerank: bool = True  # rescore PLAID's candidates by exact MaxSim from the store
    n_rerank: int = 256  # candidates asked of PLAID and rescored: max(k, n_rerank)

    def _open(self, override: bool):
        from pylate.indexes import PLAID  # lazy: pylate pulls fast-plaid and sentence-transformers; only the plaid backend needs it

        return PLAID(index_folder=str(self.folder.parent), index_name=self.folder.name, override=override, nbits=self.nbits, kmeans_niters=self.kmeans_niters, n_samples_kmeans=self.n_samples_kmeans, n_ivf_probe=self.n_ivf_probe, n_full_scores=self.n_full_scores, seed=self.seed, use_triton=False, show_progress=self.show_progress, device="cpu")

    def build(self, store: TokenStore) -> None:
        import tempfile

        self.store = store
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="plaid-")) / "index"
        self.folder = Path(self.folder)
        t = time.perf_counter()
        done = self.folder / "done.json"
        self.loaded_from_cache = done.is_file()
        if not self.loaded_from_cache:
            # build under a temporary name, then rename: a killed build never looks finished
            final, self.folder = self.folder, self.folder.with_name(f".{self.folder.name}.building-{os.getpid()}")
            index = self._open(override=True)
            docs = [torch.from_numpy(np.asarray(store.doc(i), dtype=np.float32)) for i in range(len(store))]
            index.add_documents(documents_ids=[str(i) for i in range(len(store))], documents_embeddings=docs)
            del docs, index
            atomic_write_json(self.folder / "done.json", {"docs": len(store), "tokens": store.num_tokens})
            if final.exists():
                shutil.rmtree(final)
            os.replace(self.folder, final)
            self.folder = final
        self.index = self._open(override=False)
        self.build_s = time.perf_counter() - t

    def index_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def search(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        D, I = _empty(len(queries), k)
        self.raw = _empty(len(queries), k)  # PLAID's own top-k and scores, kept for comparison
        n = min(max(k, self.n_rerank) if self.rerank else k, len(self.store))
        hits = self.index([torch.from_numpy(np.asarray(q, dtype=np.float32)) for q in queries], k=n)
        for qi, row in enumerate(hits):
            cands = np.array([int(h["id"]) for h in row], dtype=np.int64)
            if len(cands) == 0:
                continue
            own = np.array([h["score"] for h in row], dtype=np.float32)
            self.raw[0][qi, : min(k, len(row))], self.raw[1][qi, : min(k, len(row))] = own[:k], cands[:k]
            scores, docs = rescore(self.store, queries[qi], cands, k) if self.rerank else (own[:k], cands[:k])
            D[qi, : len(docs)], I[qi, : len(docs)] = scores, docs
        self.filled = fill_short(self.store, queries, D, I, k)  # PLAID proposed fewer than k: exact MaxSim, never a short run
        return D, I


BACKENDS = {"exact": ExactIndex, "faiss": FaissTokenIndex, "plaid": PlaidIndex}


def search_settings(name: str) -> dict:
    """The default settings of backend ``name`` that change its results (for result cache keys): a new default re-runs the search."""
    from dataclasses import fields

    skip = {"cache_path", "folder", "show_progress", "omp_threads", "add_chunk_tokens", "chunk_tokens", "query_batch"}
    return {f.name: f.default for f in fields(BACKENDS[name]) if f.name not in skip}


def make_index(name: str, **options) -> MultiVectorIndex:
    """A backend by name; the error lists the valid names."""
    if name not in BACKENDS:
        raise ValueError(f"unknown multi-vector backend {name!r}; available: {', '.join(BACKENDS)}")
    return BACKENDS[name](**options)
