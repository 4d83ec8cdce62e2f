"""Fusion through evaluate.py: ``--models bm25,TINY,bm25+TINY`` on a tiny BEIR folder with a tiny random BERT.

The fused run is ``retrieval.fusion.fuse`` of the components' saved runs; a second fusion encodes
and searches nothing; the key follows every setting that changes the fused scores and no other;
the provenance names the components' result keys; bad entries fail before anything runs; self-hits
(ArguAna-like data) are dropped from each component before fusing.
"""

from __future__ import annotations

import json

import pytest

import evaluate
from benchmarks import models
from benchmarks.beir_job import BeirJob
from benchmarks.pipeline import result_key
from benchmarks.results import load_results
from benchmarks.spec import make_spec
from encoders.dpr import DenseEncoder
from encoders.retrievers.bm25 import BM25Retriever
from encoders.retrievers.dense import DenseRetriever
from encoders.retrievers.fusion import Component, FusionRetriever
from retrieval.fusion import fuse
from retrieval.ranking import cut
from retrieval.runfile import read_trec
from tests.conftest import make_beir

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango", "nut", "olive"]
CORPUS = [{"_id": f"d{i}", "title": "", "text": f"{WORDS[i % 12]} {WORDS[(3 * i + 1) % 12]} {WORDS[(5 * i + 2) % 12]}"} for i in range(24)]
QUERIES = [{"_id": "q1", "text": "apple banana"}, {"_id": "q2", "text": "cherry fig"}, {"_id": "q3", "text": "lemon"}, {"_id": "q4", "text": "olive nut grape"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td0\t1\nq1\td12\t1\nq2\td2\t2\nq3\td8\t1\nq4\td11\t1\nq4\td5\t1\n"
K = 5  # --top-k below the corpus size, so depth matters


@pytest.fixture
def counts(monkeypatch):
    """Texts encoded and component searches, counted across the whole process."""
    n = {"encoded": 0, "bm25_search": 0, "dense_search": 0}

    def counted(method, key, texts_arg=True):
        def wrapper(self, *args, **kwargs):
            n[key] += len(args[0]) if texts_arg else 1
            return method(self, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(DenseEncoder, "encode_documents", counted(DenseEncoder.encode_documents, "encoded"))
    monkeypatch.setattr(DenseEncoder, "encode_queries", counted(DenseEncoder.encode_queries, "encoded"))
    monkeypatch.setattr(BM25Retriever, "search", counted(BM25Retriever.search, "bm25_search", False))
    monkeypatch.setattr(DenseRetriever, "search", counted(DenseRetriever.search, "dense_search", False))
    return n


def main(tmp_path, data, models_arg, *extra, out="out"):
    return evaluate.main(["--datasets", str(data), "--models", models_arg, "--output", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"),
                          "--top-k", str(K), "--device", "cpu", "--batch-size", "8", "--save-run", "-q", *extra])


def runs_of(out):
    return {r.model: (r, read_trec(out / "runs" / f"{r.stem}.trec")) for r in load_results(out)}


def assert_same_run(got, want):
    assert list(got) == list(want)
    for q in want:
        assert list(got[q]) == list(want[q]), q  # same documents in the same (trec_eval) order
        assert all(abs(got[q][d] - want[q][d]) <= 1e-12 for d in want[q]), q


def test_fused_run_is_fuse_of_the_components_saved_runs_and_cached(tmp_path, tiny_bert, counts):
    """Components are searched at the pipeline's depth floor (benchmarks.job.SEARCH_FLOOR), fused, then cut to --top-k:
    the fused top K is the fusion of the components' deep saved runs, cut to K (so it does not depend on --top-k)."""
    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    tiny = str(tiny_bert)
    assert main(tmp_path, data, f"bm25,{tiny},bm25+{tiny}") == 0
    res = runs_of(tmp_path / "out")
    (bm25, _), (dense, _) = res["BM25"], res[tiny_bert.name]
    fused, fused_run = res[f"BM25+{tiny_bert.name} (rrf)"]
    assert fused.encoder == "fusion" and fused.num_queries == 4
    assert main(tmp_path, data, f"bm25,{tiny}", "--top-k", "1000", out="deep") == 0  # the components' runs at the floor (whole corpus here)
    deep = runs_of(tmp_path / "deep")
    bm25_run, dense_run = deep["BM25"][1], deep[tiny_bert.name][1]
    assert_same_run(fused_run, cut(fuse([bm25_run, dense_run], "rrf"), K))
    assert fused.provenance["components"] == [{"name": "BM25", "kind": "bm25", "result_key": bm25.config_key},
                                              {"name": tiny_bert.name, "kind": "dpr", "result_key": dense.config_key}]
    assert fused.provenance["fusion"] == {"method": "rrf", "norm": "none", "k": 60, "weights": None}
    assert counts["encoded"] == len(CORPUS) + len(QUERIES)  # the fusion (and the deep runs) re-used the plain entry's embeddings (same folder)
    assert (counts["bm25_search"], counts["dense_search"]) == (3, 3)  # plain runs are not cached (twice: K and 1000); the fusion's component runs are

    for extra, method, norm, weights in [(["--fusion", "combsum", "--norm", "zscore"], "combsum", "zscore", None),
                                         (["--fusion", "combmnz"], "combmnz", None, None), ([], "wsum", None, [0.3, 0.7])]:
        entry = f"bm25*0.3+{tiny}*0.7" if weights else f"bm25+{tiny}"
        assert main(tmp_path, data, entry, *extra, out=f"out-{method}") == 0
        ((r, run),) = runs_of(tmp_path / f"out-{method}").values()
        assert_same_run(run, cut(fuse([bm25_run, dense_run], method, norm=norm, weights=weights), K))
        assert r.timings["component_runs_cached"] == 2 and r.timings["component_runs_searched"] == 0
    assert counts["encoded"] == len(CORPUS) + len(QUERIES)  # nothing encoded again
    assert (counts["bm25_search"], counts["dense_search"]) == (3, 3)  # and no component searched again
    assert r.model == f"BM25*0.3+{tiny_bert.name}*0.7 (wsum)"


def test_key_follows_fused_settings_and_component_settings_only(tmp_path, tiny_bert):
    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    job = BeirJob("fruit", data, split="test", task="beir", top_k=K)

    def key(entry=f"bm25+{tiny_bert}", **kw):
        spec = make_spec(models=(entry,), **{"top_k": K, "device": "cpu", **kw})
        return result_key(job, models.build(entry, spec), spec)

    base = key()
    assert key(fusion="rrf", norm="none", rrf_k=60) == base  # only resolved values key
    assert key(output=str(tmp_path / "elsewhere"), save_run=False) == base
    others = [key(fusion="combsum"), key(fusion="combsum", norm="zscore"), key(rrf_k=10), key(f"bm25*0.3+{tiny_bert}*0.7"), key(f"bm25*0.5+{tiny_bert}*0.5"),
              key(max_length=16), key(dtype="bf16"), key(top_k=3)]
    assert len({base, *others}) == len(others) + 1
    assert key(fusion="combsum", rrf_k=10) == key(fusion="combsum")  # k is read by rrf only


def test_bad_entries_fail_before_anything_runs(tmp_path, capsys):
    data = make_beir(tmp_path / "data" / "fruit", CORPUS, QUERIES, QRELS)
    for entry, msg in [("bm25+", "part '' has no model name"), ("bm25*x+minilm", "weight of 'bm25\\*x' is not a number"),
                       ("bm25*0.3+minilm", "every part a weight or none")]:
        with pytest.raises(SystemExit) as e:
            main(tmp_path, data, f"bm25,{entry}")
        assert e.value.code == 2 and msg.replace("\\", "") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(tmp_path, data, "bm25,bm25*0.3+minilm*0.7", "--fusion", "rrf")
    assert "rrf takes no weights" in capsys.readouterr().err
    assert main(tmp_path, data, "bm25,bm25+no-such-model") == 2  # an unknown component: no result written, not even bm25's
    assert "--models 'bm25+no-such-model', component 'no-such-model': model 'no-such-model' is neither an alias" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_self_hits_are_dropped_per_component_before_fusing(tmp_path, tiny_bert):
    """ArguAna-like: every query is a corpus document under its own id; the fused run is fuse of the saved (self-hit free) runs."""
    corpus = [{**d, "text": f"{d['text']} item{i}"} for i, d in enumerate(CORPUS)]  # every text unique: a query's own document is its one best hit
    queries = [{"_id": f"d{i}", "text": corpus[i]["text"]} for i in (0, 3, 7)]
    qrels = "query-id\tcorpus-id\tscore\nd0\td12\t1\nd3\td15\t1\nd7\td19\t1\n"
    data = make_beir(tmp_path / "data" / "args", corpus, queries, qrels)
    assert main(tmp_path, data, f"bm25,{tiny_bert},bm25+{tiny_bert}", "--fusion", "combsum") == 0
    res = runs_of(tmp_path / "out")
    fused, fused_run = res[f"BM25+{tiny_bert.name} (combsum)"]
    assert fused.provenance["ignore_identical_ids"] is True
    assert main(tmp_path, data, f"bm25,{tiny_bert}", "--top-k", "1000", out="deep") == 0
    deep = runs_of(tmp_path / "deep")
    assert_same_run(fused_run, cut(fuse([deep["BM25"][1], deep[tiny_bert.name][1]], "combsum"), K))
    assert all(q not in docs and len(docs) == K for q, docs in fused_run.items())


def test_mteb_search_wraps_a_fusion(tmp_path):
    """MTEB's SearchProtocol around a fusion: components cached in their own keyed folders, the fused run returned."""
    from datasets import Dataset

    from benchmarks.job import Contexts
    from benchmarks.mteb_bridge import MtebSearch, model_meta
    from retrieval.distributed import Dist

    spec = make_spec(models=("bm25+bm25x",))
    bm25 = BM25Retriever()
    other = BM25Retriever()
    other.kind, other.name = "bm25x", "BM25x"  # a second component kind without loading a model
    f = FusionRetriever("bm25+bm25x", [Component(bm25, spec.settings("bm25")), Component(other, spec.settings("bm25x"))], spec.fusion)
    search = MtebSearch(f, Contexts(spec, tmp_path, Dist()), model_meta(f.name, "fusion", kind=f.kind))
    corpus = Dataset.from_dict({"id": ["x", "y", "z"], "title": ["", "", ""], "text": ["apple pie", "banana split", "apple banana"]})
    search.index(corpus, task_metadata=None, hf_split="test", hf_subset="default", encode_kwargs={})
    queries = Dataset.from_dict({"id": ["q"], "text": ["apple"]})
    run = search.search(queries, task_metadata=None, hf_split="test", hf_subset="default", top_k=2, encode_kwargs={})
    assert set(run["q"]) == {"x", "z"}  # the two documents with "apple"
    assert {p.parent.parent.name for p in tmp_path.glob("retrievers/*/*/run-*.json")} == {"bm25", "bm25x"}
    assert json.loads(next(tmp_path.glob("retrievers/bm25/*/run-*.json")).read_text())["k"] == 3  # the whole corpus: the depth floor, bounded by 3 documents
