"""Shared fixtures: the real data folder (read at test time, never committed), slices of it, tiny models."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from encoders.training.config import TrainConfig  # noqa: E402  (after the path insert)
from encoders.training.mining import MiningConfig  # noqa: E402


def shared_data_dir() -> Path | None:
    for cand in (os.environ.get("RETRIEVAL_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if cand and (Path(cand) / "scifact" / "corpus.jsonl").is_file():
            return Path(cand)
    return None


def make_beir(root: Path, corpus=None, queries=None, qrels=None, split="test") -> Path:
    corpus = corpus if corpus is not None else [{"_id": "d1", "title": "T1", "text": "alpha"}, {"_id": "d2", "title": "", "text": "beta"}]
    queries = queries if queries is not None else [{"_id": "q1", "text": "alpha?"}, {"_id": "q2", "text": "no qrels"}]
    qrels = qrels if qrels is not None else "query-id\tcorpus-id\tscore\nq1\td1\t1\n"
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(corpus if isinstance(corpus, str) else "".join(json.dumps(c) + "\n" for c in corpus))
    (root / "queries.jsonl").write_text(queries if isinstance(queries, str) else "".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("shared BEIR data not found (set RETRIEVAL_DATA_DIR)")
    return d


def write_slice(src: Path, dst: Path, *, n_queries: int, extra_docs: int, split: str = "test", seed_offset: int = 0) -> Path:
    """A small BEIR folder: the first ``n_queries`` qrels queries, their relevant docs, plus ``extra_docs`` distractors."""
    qrels_lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()
    header, rows = qrels_lines[0], [r.split("\t") for r in qrels_lines[1:]]
    qids: list[str] = []
    for q, _, _ in rows:
        if q not in qids:
            qids.append(q)
    qids = qids[seed_offset : seed_offset + n_queries]
    keep_rows = [r for r in rows if r[0] in qids]
    rel_docs = {r[1] for r in keep_rows}
    docs = []
    with open(src / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["_id"] in rel_docs or len(docs) < len(rel_docs) + extra_docs:
                docs.append(line)
    queries = [line for line in open(src / "queries.jsonl", encoding="utf-8") if json.loads(line)["_id"] in set(qids)]
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    (dst / "corpus.jsonl").write_text("".join(docs), encoding="utf-8")
    (dst / "queries.jsonl").write_text("".join(queries), encoding="utf-8")
    (dst / "qrels" / f"{split}.tsv").write_text("\n".join([header] + ["\t".join(r) for r in keep_rows]) + "\n")
    return dst


@pytest.fixture(scope="session")
def scifact_slice(data_dir, tmp_path_factory) -> Path:
    """30 SciFact test queries, their relevant abstracts and 170 distractors."""
    return write_slice(data_dir / "scifact", tmp_path_factory.mktemp("slice") / "scifact", n_queries=30, extra_docs=170)


@pytest.fixture(scope="session")
def train_slice(data_dir, tmp_path_factory) -> Path:
    """16 SciFact *train* queries, their abstracts and 60 distractors, as BEIR folder ``sf`` (training tests)."""
    root = tmp_path_factory.mktemp("train-data")
    write_slice(data_dir / "scifact", root / "sf", n_queries=16, extra_docs=60, split="train")
    return root


BM25 = MiningConfig(method="bm25", rank_start=1, rank_end=20, count=1, margin=None, max_ratio=None)  # one BM25 negative per pair, no score filter


def tiny_train_cfg(root: Path, model: Path, out: Path, **kw) -> TrainConfig:
    """A TrainConfig for ``train_slice``: 4 steps of batch 4 at 32 tokens on CPU; ``kw`` overrides any field."""
    base = dict(model=str(model), data_dir=str(root), train_data="sf", output=str(out), batch_size=4, max_steps=4, save_steps=2,
                max_length=32, query_length=16, doc_length=32, logging_steps=1, cache_dir=str(root / "cache"), device="cpu", seed=7)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from encoders.loading import resolve_model

    return resolve_model("minilm").path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_path) -> Path:
    """A tiny random BERT saved as a plain Hugging Face folder (no sentence-transformers files), MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, out / name)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(out, safe_serialization=True)
    return out
