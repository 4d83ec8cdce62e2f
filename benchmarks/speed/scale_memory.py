"""Benchmark (not a test): peak memory of streaming encoding + indexing, against corpus size.

Writes a synthetic BEIR corpus of N documents (random words from a fixed vocabulary, 40–120 words
each), then in a fresh process runs the pipeline (``benchmarks.pipeline.run``, what ``evaluate.py --stream``
runs) with a tiny random BERT and a flat index, and reads that process's peak RSS (``ru_maxrss``). With streaming, memory should grow only by
the index itself (N x dim x 4 bytes) beyond a fixed base.

    python -m benchmarks.speed.scale_memory --docs 20000,200000
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from benchmarks.pipeline import run
from benchmarks.spec import make_spec
from encoders.loading import resolve_model

ROOT = Path(__file__).resolve().parents[2]  # the repository root (benchmarks/speed/ -> .)
WORDS = [f"w{i}" for i in range(5000)]


def write_corpus(folder: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=rng.randint(40, 120)))}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i in range(100):
            f.write(json.dumps({"_id": f"q{i}", "text": " ".join(rng.choices(WORDS, k=8))}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{rng.randrange(n)}\t1\n" for i in range(100)))
    return folder


def tiny_model(folder: Path) -> Path:
    src = resolve_model("minilm").path
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_bytes((src / name).read_bytes())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)).save_pretrained(folder)
    return folder


def child(args) -> None:
    """Run in a fresh process: the pipeline with streaming (``evaluate.py --stream``), print peak RSS."""
    logging.basicConfig(level=logging.WARNING)  # evaluate.py -q
    spec = make_spec(datasets=(args.corpus,), models=(args.model,), stream=True, shard_size=4096, batch_size=128, max_length=128, output=args.out, cache_dir=args.cache)
    t = time.perf_counter()
    run(spec)
    rc = 0  # a failure raises: the parent reports the child's stderr
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rc": rc, "peak_rss_mib": peak_mib, "wall_s": time.perf_counter() - t}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", default="20000,200000")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--corpus")
    p.add_argument("--model")
    p.add_argument("--out")
    p.add_argument("--cache")
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp) / "tiny-bert")
        dim = 32
        print(f"{'docs':>8} {'peak RSS MiB':>13} {'index MiB (N x 32 x 4 B)':>26} {'wall s':>8}")
        for n in map(int, args.docs.split(",")):
            corpus = write_corpus(Path(tmp) / f"synth{n}", n)
            out = subprocess.run([sys.executable, "-m", "benchmarks.speed.scale_memory", "--child", "--corpus", str(corpus), "--model", str(model), "--out", f"{tmp}/out{n}", "--cache", f"{tmp}/cache{n}"], cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{n} docs: the child failed (rc {out.returncode}):\n{out.stderr[-4000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n:>8} {row['peak_rss_mib']:>13.0f} {n * dim * 4 / 2**20:>26.1f} {row['wall_s']:>8.0f}")


if __name__ == "__main__":
    main()
