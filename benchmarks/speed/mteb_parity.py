"""Benchmark (not a test): MTEB's own pipeline against ours, same model and same local data, in one run.

Peer: ``mteb.evaluate`` with MTEB's ``SentenceTransformerEncoderWrapper`` around the offline
MiniLM, on MTEB's task of the same name (SciFact, NFCorpus) reading our local BEIR folder
(``benchmarks.mteb_bridge.local_task``: MTEB's data loading replaced, nothing else). MTEB searches
exactly (torch top-k over cosine) and scores with pytrec_eval. Ours: ``benchmarks.pipeline.run`` with a
fresh temporary cache (everything encoded from scratch, FAISS flat). ``--with-adapter`` also runs
our encoder through MTEB (``--task mteb``'s path). Prints nDCG@10 of each, the difference, and the
wall-time ratio MTEB / ours (both timed from model loading to metrics, data loading included).

    python -m benchmarks.speed.mteb_parity --datasets scifact,nfcorpus --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model and the data are local; MTEB must not fetch either

import torch  # noqa: E402 (after HF_HUB_OFFLINE: the project's imports load huggingface_hub)

from benchmarks.mteb_bridge import local_task  # noqa: E402
from benchmarks.pipeline import run  # noqa: E402
from benchmarks.registry import REGISTRY  # noqa: E402
from benchmarks.spec import make_spec  # noqa: E402
from encoders.loading import resolve_model  # noqa: E402
from retrieval.extras import require  # noqa: E402
from retrieval.sources import resolve  # noqa: E402


def run_mteb_st(folder: Path, mteb_name: str, split: str, model_path: str, batch_size: int) -> tuple[float, float]:
    """MTEB's sentence-transformers wrapper on the local folder -> (nDCG@10, seconds)."""
    require("mteb", extra="mteb")  # a clear message when the extra is missing
    import mteb  # lazy: the peer only; mteb is heavy to import
    from mteb.models import SentenceTransformerEncoderWrapper  # lazy: the peer only
    from sentence_transformers import SentenceTransformer  # lazy: the peer only

    t = time.perf_counter()
    model = SentenceTransformerEncoderWrapper(SentenceTransformer(model_path, device="cpu", local_files_only=True))
    res = mteb.evaluate(model, local_task(mteb_name, folder, split), cache=None, overwrite_strategy="always", co2_tracker=False, encode_kwargs={"batch_size": batch_size, "show_progress_bar": False}, show_progress_bar=False)
    (tr,) = res.task_results
    return tr.scores[split][0]["ndcg_at_10"], time.perf_counter() - t


def run_ours(folder: Path, split: str, model: str, batch_size: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(datasets=(str(folder),), split=split, models=(model,), batch_size=batch_size, device="cpu", output=f"{tmp}/out", cache_dir=f"{tmp}/cache")
        t = time.perf_counter()
        (result,) = run(spec)
        return result.metrics["ndcg@10"], time.perf_counter() - t


def run_adapter(data_dir: Path, mteb_name: str, split: str, model: str, batch_size: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(task="mteb", mteb_tasks=(mteb_name,), data_dir=str(data_dir), split=split, models=(model,), batch_size=batch_size, device="cpu", output=f"{tmp}/out", cache_dir=f"{tmp}/cache")
        t = time.perf_counter()
        (result,) = run(spec)  # the --task mteb path: benchmarks.mteb_bridge jobs through the one pipeline
        return result.metrics["ndcg@10"], time.perf_counter() - t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="scifact,nfcorpus", help="our names; each must have an MTEB task in benchmarks.registry.REGISTRY")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--model", default="minilm")
    p.add_argument("--batch-size", type=int, default=64, help="same for every pipeline")
    p.add_argument("--with-adapter", action="store_true", help="also run our encoder through mteb.evaluate (the --task mteb path)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    model_path = str(resolve_model(args.model).path)
    print(f"model {model_path}; torch threads {torch.get_num_threads()}; batch size {args.batch_size}; split {args.split}", flush=True)
    rows = {}
    for name in args.datasets.split(","):
        folder = resolve(name, args.data_dir, download=False)
        mteb_name = REGISTRY[name].mteb_name
        peer, peer_s = run_mteb_st(folder, mteb_name, args.split, model_path, args.batch_size)
        print(f"{mteb_name}: MTEB+ST wrapper nDCG@10 {peer:.5f} ({peer_s:.1f}s)", flush=True)  # printed at once: a killed run keeps it
        ours, ours_s = run_ours(folder, args.split, args.model, args.batch_size)
        row = {"mteb_task": mteb_name, "folder": str(folder), "mteb_st_ndcg@10": peer, "mteb_st_wall_s": peer_s, "ours_ndcg@10": ours, "ours_wall_s": ours_s, "diff": ours - peer, "wall_ratio_mteb_over_ours": peer_s / ours_s}
        print(f"{mteb_name} ({folder}): MTEB+ST wrapper nDCG@10 {peer:.5f} ({peer_s:.1f}s) | ours {ours:.5f} ({ours_s:.1f}s) | diff {ours - peer:+.5f} | wall MTEB/ours {peer_s / ours_s:.2f}x", flush=True)
        if args.with_adapter:
            ad, ad_s = run_adapter(folder.parent, mteb_name, args.split, args.model, args.batch_size)
            row.update({"adapter_ndcg@10": ad, "adapter_wall_s": ad_s})
            print(f"{mteb_name}: our encoder through MTEB (--task mteb) nDCG@10 {ad:.5f} ({ad_s:.1f}s) | diff vs MTEB+ST {ad - peer:+.5f}", flush=True)
        rows[name] = row
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
