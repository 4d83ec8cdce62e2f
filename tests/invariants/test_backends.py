"""No run is silently short, backend by backend (every entry of the index registries), and the pipeline reports no metric
deeper than a run that is short anyway.

* Multi-vector (``retrieval.multivector.BACKENDS``): queries that repeat two token vectors ([MASK]
  expansion's pattern) make the faiss and PLAID candidate generators propose fewer than k documents;
  every backend still returns ``min(k, documents)`` hits per query.
* Single-vector (``retrieval.dense.ALIASES``): IVF probes a few small lists, HNSW stops at efSearch;
  every index still returns ``min(k, vectors)`` hits per query.
* A retriever kind whose runs are short and not exhaustive: the result says how deep its runs are
  complete and reports no metric deeper.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import models
from benchmarks.pipeline import run
from benchmarks.spec import make_spec
from retrieval import dense, multivector
from retrieval.token_store import TokenStore
from tests.conftest import make_beir

N_DOCS, K = 1500, 1000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((int(rng.integers(4, 10)), 16)).astype(np.float32) for _ in range(N_DOCS)]
    docs = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in docs]
    folder = tmp_path_factory.mktemp("mv") / "store"
    return TokenStore(folder, shard_size=512).build([f"d{i}" for i in range(N_DOCS)], list(range(N_DOCS)), lambda rows: [docs[i] for i in rows]), docs


@pytest.mark.parametrize("backend", list(multivector.BACKENDS))
def test_every_multivector_backend_returns_k_hits_when_candidates_are_few(backend, store, tmp_path):
    s, docs = store
    options = {"faiss": {"k_tokens": 16, "omp_threads": 1}, "plaid": {"folder": tmp_path / "plaid", "n_full_scores": 256, "n_rerank": 64}}.get(backend, {})
    index = multivector.make_index(backend, **options)
    index.build(s)
    queries = [np.repeat(docs[i][:2], 16, axis=0) for i in (0, 1)]
    D, I = index.search(queries, K)
    assert [int((row >= 0).sum()) for row in I] == [K, K]
    assert all(len(set(row.tolist())) == K for row in I)  # k distinct documents


@pytest.mark.parametrize("alias", dense.ALIASES)
def test_every_dense_index_returns_k_hits_when_probes_are_few(alias):
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((3000, 16)).astype(np.float32)
    index = dense.build_index(emb / np.linalg.norm(emb, axis=1, keepdims=True), alias)
    D, I = dense.search(index, emb[:5], K)
    assert [int((row >= 0).sum()) for row in I] == [K] * 5


class Short:
    """A kind whose runs hold 3 documents whatever k is asked (a filtered index, say), and that does not claim they are all."""

    kind, name, distributed = "short", "Short", False

    def identity(self):
        return {}

    def provenance(self):
        return {}

    def index(self, corpus, ctx):
        self.ids = sorted(corpus)

    def search(self, queries, k):
        return {q: {d: 1.0 / (i + 1) for i, d in enumerate(self.ids[:3])} for q in queries}


def test_a_short_run_limits_the_depth_a_result_reports(tmp_path, monkeypatch):
    monkeypatch.setitem(models.NAMED, "short", lambda name, spec: Short())
    data = make_beir(tmp_path / "d", [{"_id": f"d{i}", "title": "", "text": f"word{i}"} for i in range(30)],
                     [{"_id": "q1", "text": "word1"}, {"_id": "q2", "text": "word2"}], "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td20\t1\n")
    (r,) = run(make_spec(datasets=(str(data),), models=("short",), output=str(tmp_path / "o"), cache_dir=str(tmp_path / "c")))
    assert r.provenance["search"]["complete_depth"] == 3 and r.provenance["search"]["short_queries"] == 2
    assert set(r.metrics) == {"ndcg@1", "ndcg@3"} and "recall@10" in r.provenance["metrics_not_reported"]
