"""Benchmark the multi-vector backends (exact, faiss, plaid) on the same stored ColBERT embeddings.

    python -m benchmarks.speed.colbert_backends --data /work/shared/data/scifact            # SciFact, all backends
    python -m benchmarks.speed.colbert_backends --data ... --plaid-docs 1000                 # PLAID on a corpus subset
    python -m benchmarks.speed.colbert_backends --peak-rss --data /work/shared/data/nfcorpus # faiss indexing peak RSS

The model is a ColBERT built from the offline MiniLM (untrained, seeded 128-d projection).
Per backend it prints nDCG@10 (pytrec_eval), the ratio to exact's, mean top-10 overlap with
exact's lists, index build time, index size on disk, and median per-query latency (faiss
and plaid: one query per call; exact: whole query set in batches, total / Q).

``--plaid-docs N`` runs all three backends a second time on a subset corpus (every document
judged relevant for a test query, then the first documents in corpus order up to N), for
when a full PLAID build does not fit the time budget. The subset is cut from the stored
embeddings: nothing is re-encoded.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import resource
import shutil
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks import models
from benchmarks.job import Contexts
from benchmarks.spec import make_spec
from benchmarks.tasks import cache_root
from encoders.retrievers.colbert import ColbertRetriever
from encoders.retrievers.dense import texts_key
from retrieval import dense
from retrieval.beir import doc_text, load_beir
from retrieval.distributed import Dist
from retrieval.io import cache_key
from retrieval.metrics import evaluate
from retrieval.multivector import ExactIndex, FaissTokenIndex, PlaidIndex
from retrieval.token_store import TokenStore

log = logging.getLogger("colbert_backends")


def overlap_at(I: np.ndarray, ref: np.ndarray, k: int = 10) -> float:
    """Mean |top-k(I) ∩ top-k(ref)| / k over queries."""
    return float(np.mean([len(set(a[:k]) & set(b[:k]) - {-1}) / k for a, b in zip(I, ref)]))


def subset_store(store: TokenStore, docs: list[int], folder: Path) -> TokenStore:
    """A new store holding ``docs`` (document numbers of ``store``) in that order, copied, not re-encoded."""
    if folder.exists():
        shutil.rmtree(folder)
    ids = [str(d) for d in docs]
    return TokenStore(folder).build(ids, ids, lambda keys: [np.asarray(store.doc(int(x)), dtype=np.float32) for x in keys], desc="copy subset")


def corpus_subset(ds, retriever: ColbertRetriever, full: TokenStore, n: int, timings: dict):
    """The first ``n`` documents in corpus order plus every document judged relevant for a test query.

    Documents in the full store's finished shards are copied from it; only the rest are encoded.
    Returns (dataset with the subset corpus, its token store).
    """
    doc_ids = list(ds.corpus)
    judged = {d for q in ds.qrels.values() for d in q if d in ds.corpus}
    keep = [d for i, d in enumerate(doc_ids) if i < n or d in judged]
    done = {}
    n_shards = full.num_shards(len(doc_ids))
    for s in range(n_shards):
        if full._path("tokens", s).is_file():
            lengths, tokens = np.load(full._path("lengths", s)), np.load(full._path("tokens", s), mmap_mode="r")
            offs = np.concatenate([[0], np.cumsum(lengths)])
            for j in range(len(lengths)):
                done[doc_ids[s * full.shard_size + j]] = tokens[offs[j] : offs[j + 1]]
    todo = [d for d in keep if d not in done]
    log.info("subset: %d docs, %d from the full store, %d to encode", len(keep), len(keep) - len(todo), len(todo))

    def encode(ids):
        new = dict(zip([d for d in ids if d not in done], retriever.encoder.encode_documents([doc_text(ds.corpus[d]) for d in ids if d not in done])))
        return [np.asarray(done[d] if d in done else new[d], dtype=np.float32) for d in ids]

    t = time.perf_counter()
    store = TokenStore(full.folder.with_name(full.folder.name + f"-subset-{cache_key(ids=keep)}")).build(keep, keep, encode, desc="subset corpus")
    timings.update(encode_corpus_s=time.perf_counter() - t, corpus_shards_encoded=store.encoded_shards, encoded_docs=len(todo) if store.encoded_shards else 0)
    return replace(ds, corpus={d: ds.corpus[d] for d in keep}), store


def bench(name: str, index, store: TokenStore, queries: list[np.ndarray], qids: list[str], doc_ids: list[str], qrels: dict, k: int, *, per_query: bool) -> dict:
    t = time.perf_counter()
    index.build(store)
    build_s = time.perf_counter() - t
    lat = []
    t = time.perf_counter()
    raw = []
    if per_query:
        parts = []
        for q in queries:
            t1 = time.perf_counter()
            parts.append(index.search([q], k))
            lat.append(time.perf_counter() - t1)
            if hasattr(index, "raw"):
                raw.append(index.raw)
        D, I = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    else:
        D, I = index.search(queries, k)
    search_s = time.perf_counter() - t
    run = dense.to_run(D, I, qids, doc_ids, k=k)
    ndcg = evaluate(qrels, run)["ndcg@10"]
    size = index.index_bytes() if hasattr(index, "index_bytes") else 0
    out = dict(backend=name, ndcg10=ndcg, build_s=build_s, index_bytes=size, search_s=search_s, median_query_s=statistics.median(lat) if lat else search_s / len(queries), I=I)
    log.info("%s: nDCG@10 %.4f build %.1fs search %.1fs", name, ndcg, build_s, search_s)
    if raw:  # plaid: also PLAID's own scores from the same searches (rows share build and latency)
        D0, I0 = np.concatenate([r[0] for r in raw]), np.concatenate([r[1] for r in raw])
        own = dict(out, backend=f"{name} (own 4-bit scores)", ndcg10=evaluate(qrels, dense.to_run(D0, I0, qids, doc_ids, k=k))["ndcg@10"], I=I0)
        return [out, own]
    return out


def flat(rows: list) -> list[dict]:
    return [r for x in rows for r in (x if isinstance(x, list) else [x])]


def report(title: str, rows: list[dict]) -> None:
    ref = rows[0]
    print(f"\n## {title}")
    print("| backend | nDCG@10 | ratio to exact | top-10 overlap | build (s) | index size (MiB) | median query (ms) | all queries (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['ndcg10']:.4f} | {r['ndcg10'] / ref['ndcg10']:.4f} | {overlap_at(r['I'], ref['I']):.4f} | {r['build_s']:.1f} | {r['index_bytes'] / 2**20:.1f} | {1000 * r['median_query_s']:.1f} | {r['search_s']:.1f} |")
    by = {r["backend"]: r for r in rows}
    if "faiss" in by and "plaid" in by:
        f, p = by["faiss"], by["plaid"]
        print(f"faiss vs plaid: build {p['build_s'] / f['build_s']:.1f}x faster, median query {p['median_query_s'] / f['median_query_s']:.1f}x faster")
    sys.stdout.flush()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/scifact")
    ap.add_argument("--cache-dir", default="/tmp/colbert-bench-cache")
    ap.add_argument("--doc-length", type=int, default=300)
    ap.add_argument("--k", type=int, default=100, help="hits per query for every backend")
    ap.add_argument("--backends", default="exact,faiss,plaid")
    ap.add_argument("--plaid-docs", type=int, default=0, help="also run all backends on a subset of this many documents (0: no subset run)")
    ap.add_argument("--faiss-threads", type=int, default=1, help="FAISS OpenMP threads (1: fastest on an oversubscribed shared CPU)")
    ap.add_argument("--max-docs", type=int, default=0, help="benchmark on the first N documents plus every judged one (0: whole corpus); reuses finished shards of the full store")
    ap.add_argument("--peak-rss", action="store_true", help="only encode (cached) and build the faiss index; report peak RSS vs float32 token size")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    spec = make_spec(encoder="colbert", models=("minilm",), doc_length=args.doc_length, cache_dir=args.cache_dir, index="exact")
    ds = load_beir(Path(args.data), "test")
    retriever = models.build("minilm", spec)
    ctx = Contexts(spec, cache_root(spec), Dist())(retriever, ds.corpus_checksum, ds.name)  # the pipeline's own cache folder for this corpus
    corpus_store = TokenStore(ctx.cache / "corpus", shard_size=spec.encoding.token_shard_size)
    timings: dict = {}
    if args.max_docs:  # copy the full store's finished shards, encode only the rest of the subset
        ds, corpus_store = corpus_subset(ds, retriever, corpus_store, args.max_docs, timings)
    else:
        retriever.index(ds.corpus, ctx)  # encodes the missing shards of ctx.cache/"corpus" (the exact index is free)
        timings.update(retriever.timings)
        corpus_store.open()
    qids = list(ds.queries)
    q_texts = [ds.queries[q] for q in qids]
    q_store = TokenStore(ctx.cache / f"queries-{texts_key(qids, q_texts)}", shard_size=spec.encoding.token_shard_size)  # where the retriever's search() caches them
    q_store.build(qids, q_texts, retriever.encoder.encode_queries, desc="encode queries")
    del retriever
    f32_mib = corpus_store.num_tokens * corpus_store.dim * 4 / 2**20
    print(f"{ds.name}: {len(corpus_store)} docs, {corpus_store.num_tokens} doc tokens (float32 {f32_mib:.0f} MiB, fp16 store {corpus_store.nbytes() / 2**20:.0f} MiB), {len(q_store)} queries; encode corpus {timings['encode_corpus_s']:.0f}s ({timings['corpus_shards_encoded']} shards encoded this run)", flush=True)

    if args.peak_rss:
        import psutil  # lazy: only --peak-rss samples memory

        gc.collect()
        proc = psutil.Process()
        base = proc.memory_info().rss / 2**20
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss / 2**20)
                time.sleep(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        idx = FaissTokenIndex(omp_threads=args.faiss_threads)
        t = time.perf_counter()
        idx.build(corpus_store)
        build_s = time.perf_counter() - t
        stop.set()
        th.join()
        print(f"faiss {idx.factory_used} build {build_s:.1f}s on {corpus_store.num_tokens} tokens; RSS before build {base:.0f} MiB, peak during build {peak[0]:.0f} MiB (+{peak[0] - base:.0f} MiB); process high-water mark {peak_rss_mib():.0f} MiB (includes encoding); float32 token embeddings {f32_mib:.0f} MiB")
        return 0

    queries = [np.asarray(q_store.doc(i), dtype=np.float32) for i in range(len(q_store))]
    doc_ids = list(ds.corpus)
    backends = args.backends.split(",")
    work = Path(args.cache_dir) / "bench-indexes"

    def make(name: str, tag: str):
        if name == "exact":
            return ExactIndex()
        if name == "faiss":
            return FaissTokenIndex(omp_threads=args.faiss_threads)
        folder = work / f"plaid-{tag}"
        if folder.exists():
            shutil.rmtree(folder)  # always a fresh build: we time it
        return PlaidIndex(folder=folder)

    full = [b for b in backends if b != "plaid" or not args.plaid_docs]
    rows = flat([bench(b, make(b, "full"), corpus_store, queries, qids, doc_ids, ds.qrels, args.k, per_query=b != "exact") for b in full])
    report(f"{ds.name}: all {len(doc_ids)} documents, {len(qids)} queries, k={args.k}", rows)

    if args.plaid_docs:
        rel = {doc_ids.index(d) for q in ds.qrels.values() for d in q if d in ds.corpus}
        docs = sorted(rel)
        docs += [i for i in range(len(doc_ids)) if i not in rel][: max(0, args.plaid_docs - len(docs))]
        docs = sorted(docs)
        sub = subset_store(corpus_store, docs, work / "subset-store")
        sub_ids = [doc_ids[i] for i in docs]
        print(f"subset: {len(sub)} docs ({len(rel)} judged relevant + fill in corpus order), {sub.num_tokens} tokens")
        rows = flat([bench(b, make(b, "subset"), sub, queries, qids, sub_ids, ds.qrels, args.k, per_query=b != "exact") for b in backends])
        report(f"{ds.name} subset: {len(sub)} documents, {len(qids)} queries, k={args.k}", rows)
    print(json.dumps({"peak_rss_mib": round(peak_rss_mib())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
