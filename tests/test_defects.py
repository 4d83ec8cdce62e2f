"""The defects of issue 31, one test each, through interfaces that 6b24752 already had (each fails there, passes now).

1. Table cells: Table 1 took the train split, means mixed splits, the file name sorting last won a
   cell, and a BEIR and an MTEB run of one dataset were averaged together.
2. A number computed by other code passed as current (the key did not cover the code).
3. Reproduction tolerances that accept the alternative the figure claims to beat; no published/own column.
4. The trained-model cache of --reproduce ignored the resolved dtype and the device.
5. BM25 returned documents matching no query term (ordered by id), so metrics depended on the run's depth.
6. The ColBERT faiss backend returned fewer than k documents without a word.
7. Empty queries not counted, queries without text not counted, library versions missing from keys, a BOM refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

import evaluate
from benchmarks import entries, reproduce
from benchmarks.results import Result, load_results, save_result
from retrieval.beir import load_beir
from tests.conftest import ROOT, make_beir

WORDS = "apple banana cherry date elder fig grape kiwi lemon mango".split()


def fruit(root: Path, name: str = "scifact") -> Path:
    """40 documents, 4 test and 4 train queries (with different relevant documents, so the splits score differently)."""
    corpus = [{"_id": f"d{i:02d}", "title": WORDS[i % 10] if i % 4 == 0 else "", "text": f"{WORDS[(3 * i) % 10]} {WORDS[(7 * i + 1) % 10]} {WORDS[(i + 5) % 10]}"} for i in range(40)]
    queries = [{"_id": f"q{i}", "text": f"{WORDS[i]} {WORDS[(i + 3) % 10]}"} for i in range(8)]
    folder = make_beir(root / name, corpus, queries, "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{(5 * i + 3) % 40:02d}\t1\n" for i in range(4)))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{(11 * i) % 40:02d}\t1\n" for i in range(4, 8)))
    return folder


def table1_row(md: str, label: str) -> list[str]:
    table = md.split("## ")[1]
    line = next(x for x in table.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


# ---------------------------------------------------------------- 1. table cells


def test_1_table1_takes_the_test_split_and_means_never_mix_splits(tmp_path):
    data, out = fruit(tmp_path), tmp_path / "out"
    for split in ("test", "train"):
        assert evaluate.main(["--datasets", str(data), "--models", "bm25", "--split", split, "--output", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
    test, train = sorted(load_results(out), key=lambda r: r.split != "test")
    assert test.split == "test" and train.split == "train" and test.metrics["ndcg@10"] != train.metrics["ndcg@10"]
    assert evaluate.main(["--leaderboard", str(out), "--layout", "paper", "-q"]) == 0
    md = (out / "paper.md").read_text()
    assert table1_row(md, "BM25")[0] == f"{100 * test.metrics['ndcg@10']:.1f}"
    assert f"{50 * (test.metrics['ndcg@10'] + train.metrics['ndcg@10']):.1f}" not in md  # no mean over the two splits


def hand(model, dataset, task, ndcg, key, created, **settings):
    return Result(model=model, encoder="bm25", dataset=dataset, split="test", task=task, metrics={"ndcg@10": ndcg}, num_queries=5, num_docs=50,
                  config_key=key, created_at=created, provenance={"settings": {"index.top_k": 1000, **settings}, "dataset_checksum": dataset})


def test_1_two_settings_are_two_labelled_rows_and_an_mteb_run_counts_once(tmp_path):
    for r in [hand("BM25", "scifact", "beir", 0.60, "a" * 20, "2026-01-02T00:00:00+0000"),
              hand("BM25", "scifact", "beir", 0.50, "z" * 20, "2026-01-01T00:00:00+0000", **{"index.bm25_pad": True}),  # sorts last, older
              hand("BM25", "nfcorpus", "beir", 0.30, "b" * 20, "2026-01-02T00:00:00+0000"),
              hand("BM25", "nfcorpus", "beir", 0.30, "y" * 20, "2026-01-01T00:00:00+0000", **{"index.bm25_pad": True}),
              hand("BM25", "SciFact (MTEB)", "mteb", 0.90, "c" * 20, "2026-01-03T00:00:00+0000", **{"data.task": "mteb"})]:
        save_result(r, tmp_path)
    assert evaluate.main(["--leaderboard", str(tmp_path), "--layout", "paper", "-q"]) == 0
    md = (tmp_path / "paper.md").read_text()
    rows = [line.split(" | ")[0].lstrip("| ") for line in md.split("## ")[1].splitlines() if line.startswith("| BM25")]
    assert len(rows) == 3  # default settings, --bm25-pad, and the MTEB run: each labelled
    values = {label: table1_row(md, label)[0].rstrip("*") for label in rows}  # * = only some of the column's datasets (the MTEB row has SciFact alone)
    assert sorted(values.values()) == ["40.0", "45.0", "90.0"]  # each row its own mean; MTEB's SciFact never averaged into the BEIR row


# ---------------------------------------------------------------- 2. code identity


def test_2_a_number_computed_by_other_code_is_not_served_from_the_cache(tmp_path):
    """Copy the product, evaluate BM25, make BM25 index the text without the title, evaluate again: a new number."""
    src = tmp_path / "src"
    for d in ("retrieval", "encoders", "benchmarks", "configs"):
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("evaluate.py", "train.py"):
        shutil.copy(ROOT / f, src / f)
    data = fruit(tmp_path)
    cmd = [sys.executable, str(src / "evaluate.py"), "--datasets", str(data), "--models", "bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "-q"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    assert subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True).returncode == 0
    (first,) = load_results(tmp_path / "out")
    bm25 = src / "encoders" / "bm25.py"
    text = bm25.read_text()
    assert "index = BM25Index([doc_text(corpus[d]) for d in doc_ids], cfg)" in text
    bm25.write_text(text.replace("index = BM25Index([doc_text(corpus[d]) for d in doc_ids], cfg)", "index = BM25Index([corpus[d]['text'] for d in doc_ids], cfg)"))
    p = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    latest = max(load_results(tmp_path / "out"), key=lambda r: r.created_at)
    assert latest.created_at != first.created_at and latest.metrics != first.metrics  # recomputed by the new code, and it differs


# ---------------------------------------------------------------- 3. reproduction tolerances


def test_3_every_entry_says_its_source_and_tolerances_reject_what_they_claim_to_differ_from():
    entries = {p.stem: tomllib.loads(p.read_text()) for p in (ROOT / "configs" / "reproductions").glob("*.toml")}
    assert all(e.get("source_kind") in ("published", "own") for e in entries.values())
    for name, other in [("nfc-dpr-inbatch", "minilm-nfcorpus-mteb"), ("i19-colbert-kd", "i19-colbert-contrastive"),
                        ("sf-colbert-c", "sf-colbert-d"), ("sf-colbert-d", "sf-colbert-c")]:
        e, o = entries[name], entries[other]
        assert e["tolerance"] < abs(e["expected"] - o["expected"]), (name, other)


# ---------------------------------------------------------------- 4. trained-model folders


def test_4_the_trained_model_folder_depends_on_the_precision_and_device(tmp_path):
    ctx = reproduce.Context(out=tmp_path, cache_dir=str(tmp_path / "cache"))

    def folder(**s):
        return reproduce.train_folder(entries.Entry(name="t", path=tmp_path / "t.toml", description="d", expected=0.5, tolerance=0.01, source="s", cost="cheap",
                                                      cpu_time="1 s", run={"datasets": ("x",)}, train=entries.TrainStep({"model": "minilm", **s})), ctx)

    assert len({folder(dtype="fp32"), folder(dtype="bf16")}) == 2
    assert folder(dtype="fp32", device="cpu") != folder(dtype="fp32", device="cuda")


# ---------------------------------------------------------------- 5. BM25 and documents that match nothing


def test_5_a_query_of_unknown_words_scores_zero(tmp_path):
    corpus = [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(["apple pie", "banana split", "cherry tart", "date loaf", "elder wine",
                                                                                "fig roll", "grape juice", "kiwi fool", "lemon curd", "mango lassi"])]
    queries = [{"_id": "q1", "text": "zebra"}, {"_id": "q2", "text": "unknownword"}, {"_id": "q3", "text": "apple"}]
    qrels = "query-id\tcorpus-id\tscore\nq1\td9\t1\nq2\td9\t1\nq3\td0\t1\n"  # d9: first in trec_eval's tie order (ids descending)
    data = make_beir(tmp_path / "ten", corpus, queries, qrels)
    assert evaluate.main(["--datasets", str(data), "--models", "bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
    (r,) = load_results(tmp_path / "out")
    scores = dict(zip(r.per_query["qids"], r.per_query["ndcg@10"]))
    assert scores == {"q1": 0.0, "q2": 0.0, "q3": 1.0}


def test_5_nfcorpus_bm25_recall_at_100_does_not_depend_on_the_depth(data_dir, tmp_path):
    got = {}
    for k in (100, 1000):
        assert evaluate.main(["--datasets", "nfcorpus", "--data-dir", str(data_dir), "--models", "bm25", "--top-k", str(k), "--output", str(tmp_path / f"o{k}"),
                              "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
        (r,) = load_results(tmp_path / f"o{k}")
        got[k] = r.metrics
    assert got[100]["recall@100"] == got[1000]["recall@100"] and got[100]["ndcg@10"] == got[1000]["ndcg@10"]
    assert got[1000]["recall@1000"] < 0.40  # 0.3712: documents sharing no term are not retrieved (0.49-0.50 with them)


# ---------------------------------------------------------------- 6. no silently short ColBERT runs


def test_6_the_colbert_faiss_backend_returns_k_documents_when_queries_repeat_few_vectors(tmp_path):
    from retrieval.multivector import FaissTokenIndex
    from retrieval.token_store import TokenStore

    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((int(rng.integers(4, 12)), 16)).astype(np.float32) for _ in range(3000)]
    docs = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in docs]
    ids = [f"d{i}" for i in range(len(docs))]
    store = TokenStore(tmp_path / "store", shard_size=1024).build(ids, list(range(len(ids))), lambda rows: [docs[i] for i in rows])
    index = FaissTokenIndex(k_tokens=32, omp_threads=1)
    index.build(store)
    few = docs[0][:2]
    queries = [np.repeat(few, 16, axis=0) for _ in range(3)]  # 32 tokens, two distinct vectors: [MASK] expansion's pattern
    D, I = index.search(queries, 1000)
    assert [int((row >= 0).sum()) for row in I] == [1000, 1000, 1000]


# ---------------------------------------------------------------- 7. the smaller ones


def test_7_empty_and_textless_queries_are_counted(tmp_path):
    data = make_beir(tmp_path / "d", [{"_id": f"d{i}", "title": "", "text": w} for i, w in enumerate(WORDS)],
                     [{"_id": "q1", "text": "apple"}, {"_id": "q2", "text": "   "}], "query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\t1\nq3\td2\t1\n")
    assert evaluate.main(["--datasets", str(data), "--models", "bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "-q"]) == 0
    (r,) = load_results(tmp_path / "out")
    assert r.provenance["empty_queries"] == 1 and r.provenance["queries_without_text"] == 1 and r.num_queries == 2


def test_7_faiss_pystemmer_and_pytrec_eval_versions_key_results(tmp_path, tiny_bert):
    from benchmarks.beir_job import BeirJob
    from benchmarks.models import build
    from benchmarks.spec import make_spec

    data = fruit(tmp_path)
    job = BeirJob("scifact", data, split="test", task="beir", top_k=10)
    assert "pytrec-eval-terrier" in json.dumps(job.identity())
    assert "PyStemmer" in json.dumps(build("bm25", make_spec(models=("bm25",))).identity())
    assert "faiss-cpu" in json.dumps(build(str(tiny_bert), make_spec(models=(str(tiny_bert),), device="cpu")).identity())


def test_7_a_byte_order_mark_is_read_past(tmp_path):
    data = fruit(tmp_path)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (data / name).write_bytes(b"\xef\xbb\xbf" + (data / name).read_bytes())
    ds = load_beir(data, "test")
    assert len(ds.corpus) == 40 and "d00" in ds.corpus and len(ds.queries) == 4
