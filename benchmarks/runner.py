"""Run an evaluation: per dataset and model, load -> encode -> index -> search -> metrics -> result JSON.

Every step's output is cached on disk under a key of what determines it, and written
atomically, so a second identical run re-encodes nothing and a killed run resumes where it
stopped (finished results are skipped; a half-encoded corpus resumes from its last shard).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import datasets as ds_registry
from benchmarks.config import EvalConfig, split_list
from benchmarks.distributed import Dist
from benchmarks.distributed import init as init_dist
from benchmarks.distributed import shutdown as shutdown_dist
from benchmarks.data import BeirDataset, LazyTexts, doc_text, load_beir
from benchmarks.leaderboard import write_leaderboard
from benchmarks.results import Result, git_commit, library_versions, load_result, machine, result_stem, save_result
from retrieval import dense
from retrieval.metrics import evaluate
from retrieval.runfile import write_trec
from retrieval.store import EmbeddingStore, cache_key

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A neural model ready to encode, plus what identifies it in caches and results."""

    name: str
    encoder: object  # DenseEncoder (or ColBERT encoder)
    identity: dict  # everything that determines its embeddings
    provenance: dict


def default_device(device: str | None) -> str:
    if device:
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def variant_suffix(cfg: EvalConfig) -> str:
    """Non-default settings that change scores become part of the display name, e.g. ``[bf16, hnsw]``."""
    parts = []
    if cfg.dtype != "fp32":
        parts.append(cfg.dtype)
    if cfg.index != "flat":
        parts.append(cfg.index)
    if cfg.pooling:
        parts.append(f"{cfg.pooling}-pool")
    if cfg.max_length:
        parts.append(f"len{cfg.max_length}")
    if cfg.similarity != "cos":
        parts.append(cfg.similarity)
    if cfg.query_prefix or cfg.doc_prefix:
        parts.append("prefixed")
    if cfg.doc_handling != "truncate":
        parts.append(cfg.doc_handling)
    return f" [{', '.join(parts)}]" if parts else ""


def load_dense_model(spec: str, cfg: EvalConfig) -> LoadedModel:
    from encoders.dpr import DenseEncoder, DenseEncoderConfig
    from encoders.loading import load_sentence_transformer, resolve_model

    src = resolve_model(spec, trust_remote_code=cfg.trust_remote_code)
    st = load_sentence_transformer(src, pooling=cfg.pooling, max_length=cfg.max_length, device=default_device(cfg.device), trust_remote_code=cfg.trust_remote_code)
    enc = DenseEncoder(st, DenseEncoderConfig(similarity=cfg.similarity, query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix, batch_size=cfg.batch_size, dtype=cfg.dtype))
    log.info("%s: effective max length %d tokens", src.name, enc.max_length)
    backend = swap_backbone(st, cfg)
    identity = dict(path=str(src.path), revision=src.revision, pooling=cfg.pooling, max_length=enc.max_length, similarity=cfg.similarity, query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix, dtype=cfg.dtype)
    prov = dict(model_spec=spec, model_path=str(src.path), model_revision=src.revision, max_length=enc.max_length, pooling=cfg.pooling or "model default", similarity=cfg.similarity, dtype=cfg.dtype, query_prefix=cfg.query_prefix, doc_prefix=cfg.doc_prefix, device=str(st.device), backbone=backend)
    return LoadedModel(src.name + variant_suffix(cfg), enc, identity, prov)


def swap_backbone(st_model, cfg: EvalConfig) -> str:
    """Run ModernBERT checkpoints on our unpadded backbone (same weights); returns what runs, for the log."""
    if cfg.no_unpadded:
        return "transformers (padded, --no-unpadded)"
    from encoders.modernbert_st import use_unpadded_modernbert

    backend = use_unpadded_modernbert(st_model, backend=cfg.attn_backend, compile=cfg.compile)
    if backend is None:
        return "transformers"
    log.info("ModernBERT: unpadded backbone, attention backend %s%s", backend, " (compiled MLPs)" if cfg.compile else "")
    return f"unpadded ModernBERT ({backend})"


def _load_model(spec: str, cfg: EvalConfig) -> LoadedModel:
    if cfg.encoder == "dpr":
        return load_dense_model(spec, cfg)
    if cfg.encoder == "colbert":
        from benchmarks.colbert_eval import load_colbert_model

        return load_colbert_model(spec, cfg)
    raise ValueError(f"unknown encoder {cfg.encoder!r}; available: dpr, colbert")


def _cache_root(cfg: EvalConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else ds_registry.cache_dir()


def evaluate_dense(ds: BeirDataset, model: LoadedModel, cfg: EvalConfig, ignore_ids: bool, d: Dist = Dist()) -> tuple[dict, dict, dict] | None:
    """Encode (cached), index (cached), search, score. Returns (run, timings, extra provenance).

    Under torchrun every rank encodes its share of the corpus shards; rank 0 does the rest and the
    other ranks return None.
    """
    timings: dict[str, float] = {}
    root = _cache_root(cfg)
    enc_key = cache_key(**model.identity)
    doc_ids = list(ds.corpus)
    qids = list(ds.queries)

    t = time.perf_counter()
    texts = LazyTexts(ds.corpus, doc_ids)  # read per shard: never all texts at once
    chunk_doc = None  # MaxP: the document index of each encoded chunk
    store_ids, store_key = doc_ids, f"corpus-{ds.corpus_checksum[:16]}-{enc_key}"
    if cfg.doc_handling == "maxp":
        from retrieval.maxp import chunk_text

        tok = model.encoder.model.tokenizer
        window = model.encoder.max_length - tok.num_special_tokens_to_add() - len(tok(cfg.doc_prefix, add_special_tokens=False)["input_ids"])
        chunks = [chunk_text(t, tok, window, cfg.chunk_stride) for t in texts[:]]
        chunk_doc = np.repeat(np.arange(len(doc_ids)), [len(c) for c in chunks])
        texts = [piece for c in chunks for piece in c]
        store_ids = [f"{doc_ids[d]}#{j}" for d, c in enumerate(chunks) for j in range(len(c))]
        store_key += f"-maxp{window}-{cfg.chunk_stride or window}"
        timings["chunks"] = len(texts)
    corpus_store = EmbeddingStore(root / "embeddings" / f"{store_key}-s{cfg.shard_size}", shard_size=cfg.shard_size)
    if cfg.no_cache and d.is_main:
        _wipe(corpus_store.folder)
    d.barrier()  # no rank writes a shard before rank 0 has wiped the old store
    doc_emb = corpus_store.build(store_ids, texts, model.encoder.encode_documents, desc=f"encode {ds.name} corpus", rank=d.rank, world=d.world, barrier=d.barrier, load=not cfg.stream)
    if not d.is_main:
        return None
    n_vec = len(store_ids)
    dim = int(json.loads((corpus_store.folder / "meta.json").read_text())["dim"])
    timings["encode_corpus_s"] = time.perf_counter() - t
    timings["corpus_shards_encoded"] = corpus_store.encoded_shards

    t = time.perf_counter()
    q_store = EmbeddingStore(root / "embeddings" / f"queries-{ds.checksum[:16]}-{enc_key}-s{cfg.shard_size}", shard_size=cfg.shard_size)
    if cfg.no_cache:
        _wipe(q_store.folder)
    q_emb = q_store.build(qids, [ds.queries[q] for q in qids], model.encoder.encode_queries, desc=f"encode {ds.name} queries")
    timings["encode_queries_s"] = time.perf_counter() - t

    t = time.perf_counter()
    factory = dense.factory_string(cfg.index, n_vec, dim)

    def build():
        if doc_emb is not None:
            return dense.build_index(doc_emb, factory)
        return dense.build_index_from_shards(lambda: corpus_store.iter_shards(n_vec), n_vec, dim, factory)

    index_path = root / "indexes" / f"{store_key}-{cache_key(factory=factory)}.faiss"
    if factory == "Flat":  # exact search: building is a copy, caching would only duplicate the embeddings
        index = build()
    elif index_path.is_file() and not cfg.no_cache:
        index = dense.load_index(index_path)
    else:
        index = build()
        dense.save_index(index, index_path)
    del doc_emb  # the index holds the vectors now
    timings["index_s"] = time.perf_counter() - t

    t = time.perf_counter()
    k = min(cfg.top_k, len(doc_ids))
    if chunk_doc is None:
        D, I = dense.search(index, q_emb, k + int(ignore_ids), desc=f"search {ds.name}")
    else:  # enough chunks that k documents survive the max over chunks in all but pathological cases
        from retrieval.maxp import max_over_chunks

        kc = min(len(chunk_doc), 4 * (k + 1) * max(1, round(len(chunk_doc) / len(doc_ids))))
        D, I = max_over_chunks(*dense.search(index, q_emb, kc, desc=f"search {ds.name}"), chunk_doc, k + int(ignore_ids))
    run = dense.to_run(D, I, qids, doc_ids, ignore_identical_ids=ignore_ids, k=k)
    timings["search_s"] = time.perf_counter() - t
    return run, timings, {"index": cfg.index, "faiss_factory": factory, "embedding_dim": dim, "doc_handling": cfg.doc_handling}


def _wipe(folder: Path) -> None:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)


def result_config_key(ds: BeirDataset, model_identity: dict, encoder: str, cfg: EvalConfig, ignore_ids: bool) -> str:
    handling = (cfg.doc_handling, cfg.chunk_stride) if encoder == "dpr" else None
    extra = {}
    if encoder == "colbert":  # the backend's result-changing defaults: a new default is a new result
        from benchmarks.colbert_eval import backend_for
        from retrieval.multivector import search_settings

        backend, options = backend_for(cfg.index)
        extra["search"] = {**search_settings(backend), **options}
    return cache_key(dataset=ds.checksum, split=ds.split, model=model_identity, encoder=encoder, index=cfg.index, top_k=cfg.top_k, ignore_identical_ids=ignore_ids, doc_handling=handling, **extra)


def task_datasets(task: str) -> list[str]:
    """The default datasets of each task (``--datasets`` overrides)."""
    from benchmarks.longdoc import default_datasets

    return {"beir": ["scifact"], "code": ["cosqa"], "longdoc": default_datasets()}[task]


TASKS = ("beir", "code", "longdoc", "mteb", "all")


def run(cfg: EvalConfig) -> list[Result]:
    """Evaluate every (dataset, model) pair of ``cfg``; returns the results (fresh or cached)."""
    if cfg.task not in TASKS:
        import difflib

        hint = difflib.get_close_matches(cfg.task, TASKS, n=1)
        raise ValueError(f"unknown task {cfg.task!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (available: {', '.join(TASKS)})")
    if cfg.task == "all":
        return [r for t in ("beir", "code", "longdoc") for r in run(dataclasses.replace(cfg, task=t))]
    if cfg.task == "mteb":
        from benchmarks.mteb_adapter import run_mteb

        return run_mteb(cfg)
    return run_retrieval(cfg, split_list(cfg.datasets) if cfg.datasets else task_datasets(cfg.task))


def resolve_dataset(spec: str, cfg: EvalConfig) -> Path:
    """A generated long-document suite name, a BEIR name, or a folder."""
    from benchmarks.longdoc import materialize, parse_name

    from benchmarks.layouts import as_beir, detect

    if parse_name(spec) is not None:
        return materialize(spec, _cache_root(cfg), cfg.data_dir)
    # Folders in another published layout (MLDR, LongEmbed, MTEB/CoIR snapshots) are converted once.
    env_dir = os.environ.get(ds_registry.DATA_DIR_ENV)
    for cand in (Path(spec).expanduser(), cfg.data_dir and Path(cfg.data_dir) / spec, env_dir and Path(env_dir) / spec):
        if cand and cand.is_dir() and detect(cand, cfg.split) not in (None, "beir"):
            return as_beir(cand, _cache_root(cfg), cfg.split)
    return ds_registry.resolve(spec, cfg.data_dir)


def run_retrieval(cfg: EvalConfig, dataset_specs: list[str]) -> list[Result]:
    d = init_dist()
    try:
        return _run_retrieval(cfg, dataset_specs, d)
    finally:
        shutdown_dist(d)


def _run_retrieval(cfg: EvalConfig, dataset_specs: list[str], d: Dist) -> list[Result]:
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, LoadedModel] = {}
    results: list[Result] = []
    common_prov = {"git_commit": git_commit(), "libraries": library_versions(), "machine": machine(), "world_size": d.world}
    model_specs = split_list(cfg.models)
    if not model_specs:
        raise ValueError("--models is empty")
    for ds_spec in dataset_specs:
        folder = resolve_dataset(ds_spec, cfg)
        t0 = time.perf_counter()
        ds = load_beir(folder, cfg.split, name=ds_spec if "/" not in ds_spec else None, stream=cfg.stream)
        load_s = time.perf_counter() - t0
        spec = ds_registry.spec_for(ds.name)
        ignore_ids = cfg.ignore_identical_ids or spec.ignore_identical_ids
        log.info("%s/%s: %d docs, %d queries with qrels (checksum %s)", ds.name, cfg.split, len(ds.corpus), len(ds.queries), ds.checksum[:12])
        for mspec in model_specs:
            t_start = time.perf_counter()
            if mspec == "bm25":
                name, encoder, identity = "BM25", "bm25", {"bm25": identity_bm25()}
                mprov = {"model_spec": "bm25", **identity}
            else:
                if mspec not in models:
                    models[mspec] = _load_model(mspec, cfg)
                m = models[mspec]
                name, encoder, identity, mprov = m.name, cfg.encoder, m.identity, m.provenance
            key = result_config_key(ds, identity, encoder, cfg, ignore_ids)
            path = out_dir / f"{result_stem(name, encoder, ds.name, cfg.split)}.json"
            if path.is_file() and not cfg.no_cache:
                cached = load_result(path)
                if cached.config_key == key:
                    log.info("cached: %s (%s) on %s/%s nDCG@10=%.4f", name, encoder, ds.name, cfg.split, cached.metrics["ndcg@10"])
                    results.append(cached)
                    continue
            if mspec == "bm25" and not d.is_main:
                continue  # BM25 is one process's work
            if mspec == "bm25":
                from encoders.bm25 import bm25_search

                t = time.perf_counter()
                run_ = bm25_search(ds.corpus, ds.queries, min(cfg.top_k, len(ds.corpus)), ignore_identical_ids=ignore_ids)
                timings, extra = {"search_s": time.perf_counter() - t}, {}
            elif cfg.encoder == "colbert":
                from benchmarks.colbert_eval import evaluate_colbert

                out = evaluate_colbert(ds, models[mspec], cfg, ignore_ids, d)
                if out is None:  # a non-zero rank: its token shards are on disk, rank 0 takes it from here
                    continue
                run_, timings, extra = out
            else:
                out = evaluate_dense(ds, models[mspec], cfg, ignore_ids, d)
                if out is None:  # a non-zero rank: its shards are on disk, rank 0 takes it from here
                    continue
                run_, timings, extra = out
            t = time.perf_counter()
            metrics = evaluate(ds.qrels, run_)
            timings["metrics_s"] = time.perf_counter() - t
            timings["load_data_s"] = load_s
            timings["total_s"] = time.perf_counter() - t_start + load_s
            prov = {
                **common_prov,
                **mprov,
                **extra,
                "dataset_path": str(ds.path),
                "dataset_checksum": ds.checksum,
                "corpus_checksum": ds.corpus_checksum,
                "ignore_identical_ids": ignore_ids,
                "unknown_qrels_docs": ds.unknown_qrels_docs,
                "top_k": cfg.top_k,
            }
            result = Result(model=name, encoder=encoder, dataset=ds.name, split=cfg.split, task=cfg.task, metrics=metrics, num_queries=len(ds.qrels), num_docs=len(ds.corpus), config_key=key, provenance=prov, timings=timings)
            if cfg.save_run:
                write_trec(run_, out_dir / "runs" / f"{result.stem}.trec", tag=result.stem)
            save_result(result, out_dir)
            log.info("%s (%s) on %s/%s: nDCG@10=%.4f in %.1fs", name, encoder, ds.name, cfg.split, metrics["ndcg@10"], timings["total_s"])
            results.append(result)
    if d.is_main:
        write_leaderboard(out_dir)
    return results


def identity_bm25() -> str:
    from importlib.metadata import version

    return f"bm25s {version('bm25s')}, lucene k1=1.5 b=0.75, en stopwords, snowball english"
