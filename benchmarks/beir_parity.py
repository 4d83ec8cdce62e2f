"""Benchmark (not a test): BEIR's own dense pipeline against ours, same model and data, in one run.

Peer: ``beir.retrieval.search.dense.DenseRetrievalExactSearch`` + ``EvaluateRetrieval`` (cos_sim,
``ignore_identical_ids=False`` to match our default for SciFact/NFCorpus). Ours: ``evaluate.py``'s
runner with a fresh cache (everything encoded from scratch, FAISS flat). Prints nDCG@10 of each and
the wall-time ratio peer / ours, for each ``--dtype`` of ours.

    python -m benchmarks.beir_parity --dataset scifact --data-dir ../shared/data --dtypes fp32,bf16
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch


def run_peer(folder: Path, split: str, model_path: str, batch_size: int) -> tuple[float, float]:
    from beir.datasets.data_loader import GenericDataLoader
    from beir.retrieval import models
    from beir.retrieval.evaluation import EvaluateRetrieval
    from beir.retrieval.search.dense import DenseRetrievalExactSearch

    t = time.perf_counter()
    corpus, queries, qrels = GenericDataLoader(str(folder)).load(split=split)
    dres = DenseRetrievalExactSearch(models.SentenceBERT(model_path), batch_size=batch_size)
    retriever = EvaluateRetrieval(dres, score_function="cos_sim")
    results = retriever.retrieve(corpus, queries)
    ndcg, _, _, _ = retriever.evaluate(qrels, results, retriever.k_values, ignore_identical_ids=False)
    return ndcg["NDCG@10"], time.perf_counter() - t


def run_ours(folder: Path, split: str, model: str, batch_size: int, dtype: str) -> tuple[float, float, dict]:
    from benchmarks.config import EvalConfig
    from benchmarks.runner import run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = EvalConfig(datasets=str(folder), split=split, models=model, batch_size=batch_size, dtype=dtype, output=f"{tmp}/out", cache_dir=f"{tmp}/cache")
        t = time.perf_counter()
        (result,) = run(cfg)
        return result.metrics["ndcg@10"], time.perf_counter() - t, result.timings


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="scifact")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--model", default="minilm")
    p.add_argument("--batch-size", type=int, default=64, help="same for both pipelines")
    p.add_argument("--dtypes", default="fp32,bf16", help="dtypes for our pipeline (the peer always runs fp32)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from benchmarks.datasets import resolve
    from encoders.loading import resolve_model

    folder = resolve(args.dataset, args.data_dir)
    model_path = str(resolve_model(args.model).path)
    print(f"dataset {folder} ({args.split}); model {model_path}; torch threads {torch.get_num_threads()}; batch size {args.batch_size}")
    peer_ndcg, peer_s = run_peer(folder, args.split, model_path, args.batch_size)
    print(f"BEIR DenseRetrievalExactSearch fp32: nDCG@10 {peer_ndcg:.5f}  wall {peer_s:.1f}s")
    rows = {"peer": {"ndcg@10": peer_ndcg, "wall_s": peer_s}}
    for dtype in args.dtypes.split(","):
        ndcg, secs, timings = run_ours(folder, args.split, args.model, args.batch_size, dtype)
        rows[f"ours_{dtype}"] = {"ndcg@10": ndcg, "wall_s": secs, "timings": timings, "speedup_vs_peer": peer_s / secs}
        print(f"ours {dtype}: nDCG@10 {ndcg:.5f} (diff vs peer {ndcg - peer_ndcg:+.5f})  wall {secs:.1f}s  speed-up vs peer fp32 {peer_s / secs:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
