"""Benchmark (not a test): ColBERT token stores and multi-vector backends from 10k to 1M documents on one machine.

A synthetic corpus of N documents is encoded by a tiny random encoder (token vectors drawn around a
fixed random vocabulary, so encoding costs next to nothing and tokens cluster as real ones do), into
each token-store form (:mod:`retrieval.token_codec`: fp16, residual-4bit, residual-pq, ...). Then,
each in a fresh process so its peak RSS is its own:

* ``store``: encode and write the store (a compressed form trains its codec first);
* ``truth``: exact MaxSim over the fp16 store for a sample of queries (the reference);
* ``faiss``: our ColBERTv1 backend (IVF-PQ token index, candidates re-ranked from the store), built
  over each form's store and searched one query per call;
* ``exact``: brute-force MaxSim over a compressed store (what its re-ranking can reach at best);
* ``plaid``: PyLate's PLAID (fast-plaid) over the fp16 store, up to ``--plaid-max-docs``.

Per row: peak RSS, the process' RSS after its imports (``start``) and once the store was opened
(``base``: adds the per-document offsets and ids, 16 B + an id string per document), the index bytes, disk
bytes per token, build time, ms per query, and recall@10 / nDCG@10 against exact MaxSim on fp16
(pytrec_eval, the exact top 10 as the relevant set).

    python -m benchmarks.speed.colbert_scale --docs 10000,100000 --work /tmp/colbert-scale
    python -m benchmarks.speed.colbert_scale --docs 1000000 --forms fp16,residual-pq --work /tmp/colbert-scale
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from retrieval.metrics import MetricSpec, evaluate
from retrieval.multivector import ExactIndex, FaissTokenIndex, PlaidIndex
from retrieval.token_codec import FP16
from retrieval.token_store import TokenStore

ROOT = Path(__file__).resolve().parents[2]
VOCAB, DIM, QUERY_TOKENS = 30_000, 128, 32


def rss_mib() -> float:
    """Current resident set size (MiB) from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class SyntheticEncoder:
    """The tiny random encoder: document ``i`` has 16-48 tokens; token = normalise(vocab vector of a Zipf-drawn word + document topic + noise)."""

    def __init__(self, dim: int = DIM, seed: int = 0):
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((VOCAB, dim)).astype(np.float32)
        self.words = w / np.linalg.norm(w, axis=1, keepdims=True)
        p = 1.0 / np.arange(1, VOCAB + 1) ** 0.8  # a Zipf-like word distribution: frequent words share clusters
        self.cdf = np.cumsum(p / p.sum())

    def doc_words(self, i: int) -> np.ndarray:
        rng = np.random.default_rng(1_000_003 + i)
        return np.minimum(np.searchsorted(self.cdf, rng.random(int(rng.integers(16, 49)))), VOCAB - 1)

    def tokens(self, words: np.ndarray, doc: int, seed: int) -> np.ndarray:
        """Contextual tokens: word vector + the document's own topic vector (as a contextual encoder mixes context into
        each token, so one word's tokens differ between documents) + per-token noise, normalised."""
        dim = self.words.shape[1]
        topic = np.random.default_rng(doc).standard_normal(dim).astype(np.float32) / np.sqrt(dim)
        noise = np.random.default_rng(seed).standard_normal((len(words), dim)).astype(np.float32) / np.sqrt(dim)
        x = self.words[words] + 0.6 * topic + 0.3 * noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Texts ``"doc <i>"`` -> the tokens of document i."""
        return [self.tokens(self.doc_words(i), i, 2_000_003 + i) for i in (int(t.split()[1]) for t in texts)]

    def queries(self, n_docs: int, n: int, seed: int = 7) -> list[np.ndarray]:
        """Query j: 8 words of a target document, then 24 expansion tokens near those words (as [MASK] tokens
        take on the query's meaning), each token with its own noise. Exact MaxSim usually ranks the target first."""
        rng = np.random.default_rng(seed)
        out = []
        for j, t in enumerate(self.targets(n_docs, n, seed, rng)):
            words = rng.choice(self.doc_words(int(t)), 8)
            out.append(self.tokens(np.concatenate([words, rng.choice(words, QUERY_TOKENS - 8)]), int(t), 10_000_000 + j))
        return out


    @staticmethod
    def targets(n_docs: int, n: int, seed: int = 7, rng=None) -> np.ndarray:
        """The documents the queries were drawn from (``rng`` continues to draw the queries' words)."""
        return (rng or np.random.default_rng(seed)).choice(n_docs, n, replace=False)


def store_folder(work: Path, n: int, form: str) -> Path:
    return work / f"n{n}" / f"store-{form}"


def corpus(n: int) -> tuple[list[str], list[str]]:
    return [f"d{i}" for i in range(n)], [f"doc {i}" for i in range(n)]


def phase_store(a) -> dict:
    enc, (ids, texts) = SyntheticEncoder(), corpus(a.n)
    base = rss_mib()
    t = time.perf_counter()
    store = TokenStore(store_folder(a.work, a.n, a.form), shard_size=a.shard_size, form=a.form).build(ids, texts, enc.encode, desc=f"{a.form} {a.n}")
    return dict(build_s=time.perf_counter() - t, base_mib=base, tokens=store.num_tokens, disk_bytes=store.nbytes(), bytes_per_token=store.bytes_per_token(),
                disk_bytes_per_token=store.nbytes() / store.num_tokens, max_error=store.max_error, shard_mib=a.shard_size * store.num_tokens / a.n * store.bytes_per_token() / 2**20)


def open_store(a, form: str) -> TokenStore:
    return TokenStore(store_folder(a.work, a.n, form), shard_size=a.shard_size, form=form).open()


def run_of(I: np.ndarray, D: np.ndarray) -> dict:
    return {f"q{j}": {f"d{int(d)}": float(s) for d, s in zip(I[j], D[j]) if d >= 0} for j in range(len(I))}


def phase_truth(a) -> dict:
    queries = SyntheticEncoder().queries(a.n, a.queries)
    store = open_store(a, FP16)
    base = rss_mib()
    t = time.perf_counter()
    D, I = _with(store).search(queries, 100)
    s = time.perf_counter() - t
    np.save(a.work / f"n{a.n}" / "truth.npy", I)
    return dict(base_mib=base, search_s=s, ms_per_query=1000 * s / len(queries), tokens=store.num_tokens, **quality(I, I, D, a.n))


def _with(store: TokenStore) -> ExactIndex:
    index = ExactIndex()
    index.build(store)
    return index


def quality(I: np.ndarray, truth: np.ndarray, D: np.ndarray, n_docs: int) -> dict:
    """recall@10 and nDCG@10 of a run against the exact top 10 (binary relevance, pytrec_eval), and nDCG@10 of the
    document each query was drawn from (``target_ndcg10``: a benchmark's view; exact MaxSim's own is in the truth row)."""
    spec = MetricSpec(ndcg_at=(10,), recall_at=(10,), map_at=(), mrr_at=())
    qrels = {f"q{j}": {f"d{int(d)}": 1 for d in truth[j, :10]} for j in range(len(truth))}
    m = evaluate(qrels, run_of(I, D), spec)
    target = {f"q{j}": {f"d{int(t)}": 1} for j, t in enumerate(SyntheticEncoder.targets(n_docs, len(truth)))}
    return dict(recall10=m["recall@10"], ndcg10=m["ndcg@10"], target_ndcg10=evaluate(target, run_of(I, D), spec)["ndcg@10"])


def phase_search(a) -> dict:
    queries = SyntheticEncoder().queries(a.n, a.queries)
    truth = np.load(a.work / f"n{a.n}" / "truth.npy")
    store = open_store(a, a.form)
    base = rss_mib()
    t = time.perf_counter()
    if a.backend == "faiss":
        index = FaissTokenIndex(cache_path=a.work / f"n{a.n}" / f"faiss-{a.form}.faiss")
        if index.cache_path.exists():
            index.cache_path.unlink()  # measure the build
    elif a.backend == "plaid":
        folder = a.work / f"n{a.n}" / f"plaid-{a.form}"
        shutil.rmtree(folder, ignore_errors=True)
        index = PlaidIndex(folder=folder)
    else:
        index = ExactIndex()
    index.build(store)
    build_s = time.perf_counter() - t
    after_build, build_peak = rss_mib(), peak_mib()  # the peak so far is the build's (search comes next)
    lat, parts = [], []
    if a.backend == "exact":  # a full scan: the whole query set in one pass
        t = time.perf_counter()
        D, I = index.search(queries, 10)
        lat = [(time.perf_counter() - t) / len(queries)]
    else:
        for q in queries:
            t = time.perf_counter()
            parts.append(index.search([q], 10))
            lat.append(time.perf_counter() - t)
        D, I = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    size = index.index_bytes() if hasattr(index, "index_bytes") else 0
    return dict(base_mib=base, after_build_mib=after_build, build_peak_mib=build_peak, build_s=build_s, index_bytes=size, ms_per_query=1000 * float(np.median(lat)),
                tokens=store.num_tokens, store_bytes_per_token=store.bytes_per_token(), **quality(I, truth, D, a.n))


PHASES = {"store": phase_store, "truth": phase_truth, "search": phase_search}


def child(a) -> None:
    a.work = Path(a.work)
    start = rss_mib()  # after the imports (torch, faiss, numpy): the fixed base of every phase
    t = time.perf_counter()
    row = PHASES[a.phase](a)
    row["start_mib"] = start
    row.update(phase=a.phase, n=a.n, form=a.form, backend=a.backend, wall_s=time.perf_counter() - t, peak_rss_mib=peak_mib())
    print("ROW " + json.dumps(row))


def spawn(args, phase: str, n: int, form: str = FP16, backend: str = "") -> dict | None:
    cmd = [sys.executable, "-m", "benchmarks.speed.colbert_scale", "--child", phase, "--n", str(n), "--form", form, "--backend", backend,
           "--work", str(args.work), "--queries", str(args.queries), "--shard-size", str(args.shard_size)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"  {phase} {form} {backend} at {n}: failed (rc {p.returncode}): {p.stderr[-1500:]}", flush=True)
        return None
    row = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("ROW "))[4:])
    with open(Path(args.work) / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print("  " + json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    out = ["| docs | tokens | what | store form | peak RSS MiB | base MiB | index MiB | disk B/token | build s | ms/query | recall@10 | nDCG@10 | target nDCG@10 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        what = r["phase"] if r["phase"] != "search" else r["backend"]
        bpt = r.get("disk_bytes_per_token") or r.get("store_bytes_per_token") or ""
        out.append(f"| {r['n']:,} | {r.get('tokens', 0):,} | {what} | {r['form']} | {r['peak_rss_mib']:,.0f} | {r['base_mib']:,.0f} | "
                   f"{r.get('index_bytes', 0) / 2**20:,.1f} | {bpt if bpt == '' else f'{bpt:.1f}'} | {r.get('build_s', 0):,.1f} | "
                   f"{r.get('ms_per_query', float('nan')):.1f} | {r.get('recall10', float('nan')):.3f} | {r.get('ndcg10', float('nan')):.3f} | {r.get('target_ndcg10', float('nan')):.3f} |")
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default="10000,100000")
    p.add_argument("--forms", default="fp16,residual-4bit,residual-pq")
    p.add_argument("--backends", default="faiss,exact,plaid")
    p.add_argument("--exact-max-docs", type=int, default=100_000, help="brute force over a compressed store up to this many documents")
    p.add_argument("--plaid-max-docs", type=int, default=10_000, help="PLAID (fast-plaid) up to this many documents")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--shard-size", type=int, default=1024)
    p.add_argument("--work", type=Path, default=Path("/tmp/colbert-scale"))
    p.add_argument("--keep", action="store_true", help="keep the stores of a previous run (default: start afresh)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--form", default=FP16, help=argparse.SUPPRESS)
    p.add_argument("--backend", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.phase = args.child
        return child(args)
    forms, backends = args.forms.split(","), args.backends.split(",")
    if FP16 not in forms:
        forms = [FP16, *forms]  # the truth needs the fp16 store
    rows = []
    for n in map(int, args.docs.split(",")):
        if not args.keep:
            shutil.rmtree(args.work / f"n{n}", ignore_errors=True)
        (args.work / f"n{n}").mkdir(parents=True, exist_ok=True)
        print(f"{n:,} documents", flush=True)
        rows += [r for f in forms if (r := spawn(args, "store", n, f))]
        rows += [r for r in [spawn(args, "truth", n)] if r]
        for f in forms:
            if "faiss" in backends:
                rows += [r for r in [spawn(args, "search", n, f, "faiss")] if r]
            if "exact" in backends and f != FP16 and n <= args.exact_max_docs:
                rows += [r for r in [spawn(args, "search", n, f, "exact")] if r]
        if "plaid" in backends and n <= args.plaid_max_docs:
            rows += [r for r in [spawn(args, "search", n, FP16, "plaid")] if r]
    print(table(rows))


if __name__ == "__main__":
    main()
