"""The runner's ColBERT hooks: load a model as a ColBERT, and evaluate it on one BEIR dataset.

``evaluate_colbert`` mirrors ``runner.evaluate_dense``: encode the corpus into a cached,
resumable float16 token store (keyed by corpus checksum + model identity), build or load the
chosen multi-vector index (cached too), search, and return a BEIR run.

``--index`` picks the backend:

    flat | exact          brute-force MaxSim (ground truth)
    faiss | ivfpq         ColBERTv1 end to end through a FAISS IVF-PQ token index, exact rerank
    plaid                 PyLate's PLAID (fast-plaid)
    <factory string>      faiss backend with that FAISS factory, e.g. "IVF1024,PQ16x8" or "HNSW32"
"""

from __future__ import annotations

import logging
import shutil
import time
from importlib.metadata import version

from benchmarks.config import EvalConfig
from benchmarks.data import BeirDataset, LazyTexts
from benchmarks.distributed import Dist
from benchmarks.runner import LoadedModel, _cache_root, default_device, swap_backbone, variant_suffix
from retrieval import dense
from retrieval.multivector import FaissTokenIndex, MultiVectorIndex, make_index
from retrieval.store import cache_key
from retrieval.token_store import TokenStore

log = logging.getLogger(__name__)

FAISS_PREFIXES = ("IVF", "HNSW", "PQ", "OPQ", "Flat", "SQ", "LSH", "NSG", "PCA", "RR")
DEFAULT_LENGTHS = (32, 300)


def load_colbert_model(spec: str, cfg: EvalConfig) -> LoadedModel:
    """Resolve ``spec`` and load it as a ColBERT (PyLate folder as-is; other checkpoints get a new seeded 128-d projection)."""
    from encoders.colbert import PROJECTION_SEED, ColbertConfig, ColbertEncoder, is_pylate_folder, load_colbert
    from encoders.loading import resolve_model

    src = resolve_model(spec, trust_remote_code=cfg.trust_remote_code)
    ccfg = ColbertConfig(query_length=cfg.query_length, doc_length=cfg.doc_length, batch_size=cfg.batch_size, dtype=cfg.dtype, device=default_device(cfg.device), query_prefix=cfg.query_prefix or None, doc_prefix=cfg.doc_prefix or None)
    model = load_colbert(src.path, ccfg, trust_remote_code=cfg.trust_remote_code)
    enc = ColbertEncoder(model, ccfg)
    backbone = swap_backbone(model, cfg)  # ModernBERT checkpoints run on our unpadded backbone (same weights)
    pylate_folder = is_pylate_folder(src.path)
    identity = dict(
        kind="colbert",
        path=str(src.path),
        revision=src.revision,
        pylate_folder=pylate_folder,
        projection_seed=None if pylate_folder else PROJECTION_SEED,
        dim=enc.dim,
        query_length=enc.query_length,
        doc_length=enc.doc_length,
        query_prefix=enc.query_prefix,
        doc_prefix=enc.doc_prefix,
        query_expansion=bool(model.do_query_expansion),
        attend_to_expansion_tokens=bool(model.attend_to_expansion_tokens),
        skiplist=sorted(model.skiplist_words),
        dtype=cfg.dtype,
        pylate=version("pylate"),
    )
    prov = dict(model_spec=spec, model_path=str(src.path), model_revision=src.revision, **{k: v for k, v in identity.items() if k not in ("path", "revision", "skiplist")}, device=ccfg.device, backbone=backbone)
    extra = [f"q{enc.query_length}", f"d{enc.doc_length}"] if (enc.query_length, enc.doc_length) != DEFAULT_LENGTHS else []
    name = src.name + variant_suffix(cfg) + (f" [{', '.join(extra)}]" if extra else "")
    return LoadedModel(name, enc, identity, prov)


def backend_for(spec: str) -> tuple[str, dict]:
    """``--index`` value -> (backend name, options). Errors list the valid values."""
    if spec in ("flat", "exact"):
        return "exact", {}
    if spec in ("faiss", "ivfpq"):
        return "faiss", {}
    if spec == "plaid":
        return "plaid", {}
    if "," in spec or spec.startswith(FAISS_PREFIXES):
        return "faiss", {"factory": spec}
    raise ValueError(f"unknown --index {spec!r} for --encoder colbert; use exact (or flat), faiss (or ivfpq), plaid, or a FAISS factory string such as 'IVF1024,PQ32x8'")


def _store_folder(cfg: EvalConfig, kind: str, checksum: str, enc_key: str):
    shards = "" if cfg.token_shard_size == 1024 else f"-s{cfg.token_shard_size}"  # the default keeps its unsuffixed name
    return _cache_root(cfg) / "colbert" / f"tokens-{kind}-{checksum[:16]}-{enc_key}{shards}"


def open_index(backend: str, options: dict, store: TokenStore, cfg: EvalConfig, corpus_checksum: str, enc_key: str) -> MultiVectorIndex:
    """Make the backend with its cache location (keyed by corpus, model and index options) and build/load it."""
    root = _cache_root(cfg) / "indexes"
    stem = f"colbert-{corpus_checksum[:16]}-{enc_key}"
    if backend == "faiss":
        index = FaissTokenIndex(**options)
        key = cache_key(factory=index.factory, seed=index.seed, train_per_centroid=index.train_per_centroid, tokens=store.num_tokens)
        index.cache_path = root / f"{stem}-faiss-{key}.faiss"
    elif backend == "plaid":
        index = make_index("plaid", **options)
        key = cache_key(nbits=index.nbits, kmeans_niters=index.kmeans_niters, n_samples_kmeans=index.n_samples_kmeans, seed=index.seed, fast_plaid=version("fast-plaid"))
        index.folder = root / f"{stem}-plaid-{key}"
    else:
        index = make_index(backend, **options)
    index.build(store)
    return index


def wipe_caches(cfg: EvalConfig, corpus_checksum: str, enc_key: str) -> None:
    """``--no-cache``: delete this corpus+model's token stores and multi-vector indexes."""
    for p in (_cache_root(cfg) / "indexes").glob(f"colbert-{corpus_checksum[:16]}-{enc_key}-*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def stores_for(ds: BeirDataset, model: LoadedModel, cfg: EvalConfig) -> tuple[TokenStore, TokenStore]:
    """The (corpus, queries) token stores of ``ds`` under ``model``, at their cache locations (not built yet)."""
    enc_key = cache_key(**model.identity)
    return (TokenStore(_store_folder(cfg, "corpus", ds.corpus_checksum, enc_key), shard_size=cfg.token_shard_size),
            TokenStore(_store_folder(cfg, "queries", ds.checksum, enc_key), shard_size=cfg.token_shard_size))


def encode_stores(ds: BeirDataset, model: LoadedModel, corpus_store: TokenStore, q_store: TokenStore, timings: dict, d: Dist = Dist()) -> bool:
    """Encode whatever shards of the two stores are missing; adds encode times and ``corpus_shards_encoded`` to ``timings``.

    Under torchrun every rank encodes its share of the corpus shards; rank 0 then encodes the
    queries. Returns False on the other ranks (their work is on disk).
    """
    doc_ids, qids = list(ds.corpus), list(ds.queries)
    t = time.perf_counter()
    corpus_store.build(doc_ids, LazyTexts(ds.corpus, doc_ids), model.encoder.encode_documents, desc=f"encode {ds.name} corpus", rank=d.rank, world=d.world, barrier=d.barrier)
    if not d.is_main:
        return False
    timings["encode_corpus_s"] = time.perf_counter() - t
    timings["corpus_shards_encoded"] = corpus_store.encoded_shards
    t = time.perf_counter()
    q_store.build(qids, [ds.queries[q] for q in qids], model.encoder.encode_queries, desc=f"encode {ds.name} queries")
    timings["encode_queries_s"] = time.perf_counter() - t
    return True


def evaluate_colbert(ds: BeirDataset, model: LoadedModel, cfg: EvalConfig, ignore_ids: bool, d: Dist = Dist()) -> tuple[dict, dict, dict] | None:
    """Encode (cached), index (cached), search, make a run. Returns (run, timings, extra provenance).

    Under torchrun every rank encodes its share of the corpus token shards; rank 0 does the rest
    and the other ranks return None.
    """
    timings: dict[str, float] = {}
    enc_key = cache_key(**model.identity)
    backend, options = backend_for(cfg.index)  # fail fast, before encoding
    doc_ids, qids = list(ds.corpus), list(ds.queries)
    corpus_store, q_store = stores_for(ds, model, cfg)
    if cfg.no_cache and d.is_main:
        for folder in (corpus_store.folder, q_store.folder):
            if folder.exists():
                shutil.rmtree(folder)
        wipe_caches(cfg, ds.corpus_checksum, enc_key)
    d.barrier()  # no rank writes a shard before rank 0 has wiped the old store

    if not encode_stores(ds, model, corpus_store, q_store, timings, d):
        return None
    queries = [q_store.doc(i) for i in range(len(q_store))]

    t = time.perf_counter()
    index = open_index(backend, options, corpus_store, cfg, ds.corpus_checksum, enc_key)
    timings["index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    k = min(cfg.top_k, len(doc_ids))
    D, I = index.search(queries, k + int(ignore_ids))
    run = dense.to_run(D, I, qids, doc_ids, ignore_identical_ids=ignore_ids, k=k)
    timings["search_s"] = time.perf_counter() - t

    extra = {"index": cfg.index, "colbert_backend": backend, "embedding_dim": corpus_store.dim, "corpus_tokens": corpus_store.num_tokens, "token_store_bytes": corpus_store.nbytes()}
    if backend == "faiss":
        extra.update(faiss_factory=index.factory_used, k_tokens=index.k_tokens, n_rerank=index.n_rerank, nprobe=index.nprobe_used)
    if backend == "plaid":
        extra.update(plaid=dict(nbits=index.nbits, kmeans_niters=index.kmeans_niters, n_ivf_probe=index.n_ivf_probe, n_full_scores=index.n_full_scores, rerank=index.rerank, n_rerank=index.n_rerank))
    return run, timings, extra
