"""One pipeline: a new retriever kind, defined here alone, runs through evaluate.py with caching, resume and results.

No product file is edited for it: it is registered at run time with ``benchmarks.models.register``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import evaluate
from benchmarks import models
from benchmarks.results import load_results
from retrieval.beir import LazyTexts, text_order
from retrieval.store import EmbeddingStore
from tests.conftest import make_beir

CORPUS = [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(
    ["apple banana", "banana cherry", "cherry date", "date elder", "elder fig", "fig grape", "grape apple", "zebra"])]
QUERIES = [{"_id": "q1", "text": "apple"}, {"_id": "q2", "text": "cherry date"}, {"_id": "q3", "text": "fig"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td0\t1\nq1\td6\t1\nq2\td2\t2\nq3\td4\t1\nq3\td5\t1\n"
VOCAB = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "zebra"]


def bag_of_words(texts: list[str]) -> np.ndarray:
    """``(n, 8)`` word counts over VOCAB."""
    return np.array([[t.split().count(w) for w in VOCAB] for t in texts], dtype=np.float32)


class ToyRetriever:
    """Bag-of-words vectors in a resumable store under ``ctx.cache``, scored by inner product."""

    kind, name, distributed = "toy", "Toy BoW", False
    encoded: list[int] = []  # documents encoded per call, across instances
    fail_after: int | None = None  # raise after encoding this many shards (a killed run)

    def identity(self) -> dict:
        return {"vocab": VOCAB}

    def provenance(self) -> dict:
        return {"model_spec": "toy", "timings": {"toy_shards": self.shards}}

    def index(self, corpus, ctx) -> None:
        self.ids = list(corpus)
        calls = []

        def encode(texts):
            if ToyRetriever.fail_after is not None and len(calls) == ToyRetriever.fail_after:
                raise KeyboardInterrupt("killed")
            calls.append(len(texts))
            return bag_of_words(texts)

        store = EmbeddingStore(ctx.cache / "bow", shard_size=3)
        self.emb = store.build(self.ids, LazyTexts(corpus, self.ids), encode)
        self.shards = store.encoded_shards
        ToyRetriever.encoded.append(sum(calls))

    def search(self, queries, k):
        qids = list(queries)
        scores = bag_of_words([queries[q] for q in qids]) @ self.emb.T  # (Q, D)
        return {q: {self.ids[j]: float(scores[i, j]) for j in np.argsort(-scores[i], kind="stable")[:k]} for i, q in enumerate(qids)}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(models.NAMED, "toy", lambda name, spec: ToyRetriever())  # as models.register would, undone after the test
    ToyRetriever.encoded, ToyRetriever.fail_after = [], None
    return ToyRetriever


def test_new_retriever_kind_through_evaluate(tmp_path, toy):
    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    common = ["--datasets", str(data), "--models", "toy,bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q"]
    args = [*common, "--top-k", "10"]

    toy.fail_after = 2  # killed after two of three shards
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(args)
    assert toy.encoded == [] and not list((tmp_path / "out").glob("*.json"))  # nothing half-written
    toy.fail_after = None
    assert evaluate.main(args) == 0
    assert toy.encoded == [2]  # resumed: only the third shard (documents 6 and 7) was encoded

    res = {r.model: r for r in load_results(tmp_path / "out")}
    r = res["Toy BoW"]
    assert r.encoder == "toy" and r.num_queries == 3 and r.num_docs == 8
    assert r.metrics["ndcg@10"] == pytest.approx(res["BM25"].metrics["ndcg@10"], abs=0.2) and r.metrics["recall@10"] == 1.0
    assert r.timings["toy_shards"] == 1 and r.provenance["settings"] == {"data.task": "beir", "data.split": "test", "data.ignore_identical_ids": "auto", "index.top_k": 10}
    path = tmp_path / "out" / f"{r.stem}.json"
    assert path.is_file() and r.config_key[:12] in path.name and json.loads(path.read_text())["config_key"] == r.config_key
    assert "| Toy BoW | toy |" in (tmp_path / "out" / "leaderboard.md").read_text()

    assert evaluate.main(args) == 0  # cached result: the retriever does not even index
    assert toy.encoded == [2]
    assert evaluate.main([*common, "--top-k", "20"]) == 0  # a setting that applies to every kind: a new result, embeddings reused
    assert toy.encoded == [2, 0]
    assert len(list((tmp_path / "out").glob("Toy_BoW__toy__fruit__test__*.json"))) == 2


def test_every_rank_gets_the_same_type(tmp_path, toy):
    """run() returns Results in one process; under torchrun every rank gets them too (Dist.share; tests/test_distributed.py)."""
    from benchmarks.pipeline import run
    from benchmarks.results import Result
    from benchmarks.spec import make_spec

    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    out = run(make_spec(datasets=(str(data),), models=("toy",), output=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache")))
    assert [type(r) for r in out] == [Result]


def test_results_carry_per_query_metrics(tmp_path, toy):
    """The compact per-query scores average to the reported means, so a saved result can be compared later."""
    from benchmarks.pipeline import run
    from benchmarks.spec import make_spec

    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    (r,) = run(make_spec(datasets=(str(data),), models=("toy",), output=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), top_k=10))
    assert r.per_query["qids"] == text_order({q["_id"]: q["text"] for q in QUERIES})  # in the queries' text order: never the file's or the ids' order
    for metric, mean in r.metrics.items():
        assert sum(r.per_query[metric]) / 3 == pytest.approx(mean, abs=1e-12)
    assert load_results(tmp_path / "out")[0].per_query == r.per_query
