"""Benchmark (not a test): bytes per vector, build time, query latency and recall@10 of FAISS index types.

Runs on real embeddings (the dense stores ``evaluate.py`` caches: ``corpus/`` and ``queries-…/`` in
``<cache>/retrievers/dpr/<corpus checksum>-<key>/``; default: MiniLM on SciFact), so the per-vector
sizes can be scaled to MS MARCO (8.8M passages) in docs/scale.md.

    D=~/.cache/modernretrieval/retrievers/dpr/<checksum>-<key>
    python -m benchmarks.speed.index_sizes --store $D/corpus --queries $D/queries-…
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np

from retrieval import dense

SPECS = ["Flat", "SQfp16", "HNSW32", "HNSW32,SQfp16", "ivfpq", "IVF256,PQ48x8", "IVF256,PQ24x8"]


def load_store(folder: Path) -> np.ndarray:
    shards = sorted(Path(folder).glob("shard-*.npy"))
    return np.concatenate([np.load(s) for s in shards]).astype(np.float32)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store", required=True, help="corpus embedding store folder")
    p.add_argument("--queries", required=True, help="query embedding store folder")
    p.add_argument("--scale-to", type=float, default=8.8e6, help="extrapolate sizes to this many vectors")
    args = p.parse_args(argv)
    xb, xq = load_store(Path(args.store)), load_store(Path(args.queries))
    n, dim = xb.shape
    _, I_ref = dense.search(dense.build_index(xb, "flat"), xq, 10, desc="ref")
    print(f"{n} vectors x {dim} dims; {len(xq)} queries; sizes scaled to {args.scale_to:,.0f} vectors")
    print(f"{'index':<18} {'B/vec':>7} {'GiB at scale':>13} {'build s':>8} {'ms/query':>9} {'recall@10':>10}")
    for spec in SPECS:
        t = time.perf_counter()
        index = dense.build_index(xb, spec)
        build = time.perf_counter() - t
        size = len(faiss.serialize_index(index))
        t = time.perf_counter()
        _, I = index.search(xq, 10)
        ms = (time.perf_counter() - t) / len(xq) * 1e3
        rec = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, I_ref)])
        name = dense.factory_string(spec, n, dim)
        print(f"{name:<18} {size / n:>7.0f} {size / n * args.scale_to / 2**30:>13.1f} {build:>8.2f} {ms:>9.3f} {rec:>10.3f}")


if __name__ == "__main__":
    main()
