"""The MTEB bridge offline: a hand-made BEIR folder handed to MTEB's SciFact task, BM25 and a tiny random BERT.

Checks that ``mteb.evaluate`` runs without the network through the same pipeline loop, that its
nDCG@10 equals our BEIR job's on the same folder (within 0.001), and that both result files
(MTEB's layout and ours) are written.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the Hugging Face hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from benchmarks.spec import RunSpec, make_spec

DOCS = {
    "d1": ("Aspirin", "Aspirin reduces the risk of heart attack in adults."),
    "d2": ("Vitamin D", "Vitamin D deficiency is linked to bone fractures."),
    "d3": ("", "Coffee intake and sleep quality in students."),
    "d4": ("Statins", "Statins lower cholesterol and cardiovascular events."),
    "d5": ("Exercise", "Regular exercise improves mood and memory."),
    "d6": ("Smoking", "Smoking causes lung cancer."),
    "d7": ("Sleep", "Short sleep raises blood pressure."),
    "d8": ("Salt", "High salt diets raise blood pressure in older people."),
}
QUERIES = {"q1": "aspirin prevents heart attacks", "q2": "what causes lung cancer", "q3": "blood pressure and diet", "q4": "unjudged query"}
QRELS = [("q1", "d1", 1), ("q2", "d6", 1), ("q3", "d8", 2), ("q3", "d7", 1)]


@pytest.fixture
def beir_root(tmp_path):
    """``<tmp>/data/scifact``: 8 documents, 3 judged queries (+1 without qrels, dropped as MTEB and BEIR do)."""
    folder = tmp_path / "data" / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in DOCS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": x}) + "\n" for i, x in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return tmp_path / "data"


def _spec(tmp_path, models, data_root, **kw) -> RunSpec:
    return make_spec(task="mteb", mteb_tasks=("SciFact",), models=tuple(map(str, models)), data_dir=str(data_root), output=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), batch_size=4, device="cpu", **kw)


def test_local_task_reads_the_folder(beir_root):
    from benchmarks.mteb_bridge import local_task

    task = local_task("SciFact", beir_root / "scifact")
    task.load_data()
    data = task.dataset["default"]["test"]
    assert sorted(data["corpus"]["id"]) == sorted(DOCS)
    assert sorted(data["queries"]["id"]) == ["q1", "q2", "q3"]  # q4 has no qrels
    assert data["relevant_docs"]["q3"] == {"d8": 2, "d7": 1}
    assert data["corpus"]["title"][2] == "" and data["top_ranked"] is None
    assert task.local_beir.checksum and task.data_loaded


def test_unknown_task_says_did_you_mean():
    from benchmarks.mteb_bridge import get_task

    with pytest.raises(ValueError, match="SciFact"):
        get_task("SciFac", "test")


class _Toy:
    """A retriever that scores a document by the query words it contains."""

    kind, name, distributed = "toy", "Toy", False

    def identity(self):
        return {}

    def provenance(self):
        return {}

    def index(self, corpus, ctx):
        self.docs = {d: set((c["title"] + " " + c["text"]).lower().split()) for d, c in corpus.items()}
        self.ctx = ctx

    def search(self, queries, k):
        run = {}
        for q, text in queries.items():
            scores = {d: float(len(set(text.lower().split()) & words)) for d, words in self.docs.items()}
            run[q] = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:k])
        return run


def test_search_protocol_wraps_any_retriever(tmp_path):
    from datasets import Dataset
    from mteb.models import SearchProtocol

    from benchmarks.job import Contexts
    from benchmarks.mteb_bridge import MtebSearch, model_meta
    from retrieval.distributed import Dist

    meta = model_meta("m", "sha256:abc", kind="dpr")
    assert meta.revision == "sha256-abc"
    search = MtebSearch(_Toy(), Contexts(make_spec(), tmp_path, Dist()), meta)
    assert isinstance(search, SearchProtocol)
    corpus = Dataset.from_dict({"id": ["x", "y", "z"], "title": ["a", "", ""], "text": ["b", "c", "a b"]})
    search.index(corpus, task_metadata=None, hf_split="test", hf_subset="default", encode_kwargs={})
    assert search.retriever.ctx.cache.parent == tmp_path / "retrievers" / "toy"  # a keyed cache folder, like any job's
    queries = Dataset.from_dict({"id": ["q"], "text": ["a b"]})
    run = search.search(queries, task_metadata=None, hf_split="test", hf_subset="default", top_k=2, encode_kwargs={})
    assert run == {"q": {"x": 2.0, "z": 2.0}}


def test_our_metrics_names():
    from benchmarks.mteb_bridge import our_metrics

    scores = {"ndcg_at_10": 0.5, "ndcg_at_20": 0.6, "recall_at_100": 1, "mrr_at_10": float("nan"), "main_score": 0.5, "hf_subset": "default", "languages": ["eng-Latn"], "nauc_ndcg_at_1_max": 0.1}
    assert our_metrics(scores, "ndcg_at_10") == {"ndcg@10": 0.5, "recall@100": 1.0}
    assert our_metrics({"cosine_spearman": 0.7, "main_score": 0.7}, "cosine_spearman") == {"cosine_spearman": 0.7}


def test_mteb_on_local_folder_matches_beir_job(tmp_path, beir_root, tiny_bert):
    from mteb import TaskResult

    import evaluate
    from benchmarks.mteb_bridge import LOCAL_REVISION_PREFIX
    from benchmarks.pipeline import run
    from benchmarks.results import load_results

    spec = _spec(tmp_path, ["bm25", tiny_bert], beir_root)
    mteb_bm25, mteb_dense = run(spec)
    ours = run(make_spec(datasets=(str(beir_root / "scifact"),), models=("bm25", str(tiny_bert)), output=str(tmp_path / "ours"), cache_dir=str(tmp_path / "cache"), batch_size=4, device="cpu"))
    for mres, res in zip((mteb_bm25, mteb_dense), ours):
        for metric in ("ndcg@10", "recall@100", "map@100"):
            assert abs(mres.metrics[metric] - res.metrics[metric]) <= 1e-3, (res.model, metric)
    mres, ours = mteb_dense, ours[1]
    assert (mres.task, mres.dataset, mres.num_queries, mres.num_docs) == ("mteb", "SciFact (MTEB)", 3, 8)
    assert mres.provenance["dataset_checksum"] == ours.provenance["dataset_checksum"]
    assert "local BEIR folder" in mres.provenance["data_source"]

    # MTEB's layout: <output>/mteb/<model>/<revision>/SciFact.json + model_meta.json, read by MTEB itself
    path = next(p for p in (tmp_path / "out" / "mteb").glob("*/*/SciFact.json") if p.parent.name == mres.provenance["model_revision"].replace(":", "-"))
    assert (path.parent / "model_meta.json").is_file()
    tr = TaskResult.from_disk(path)
    assert tr.task_name == "SciFact" and tr.dataset_revision == LOCAL_REVISION_PREFIX + ours.provenance["dataset_checksum"]
    assert tr.get_score() == pytest.approx(mres.metrics["ndcg@10"])

    # our Result JSONs are on the leaderboard; a second identical run is served from them
    assert [r.task for r in load_results(tmp_path / "out")] == ["mteb", "mteb"]
    assert evaluate.main(["--task", "mteb", "--mteb-tasks", "SciFact", "--models", f"bm25,{tiny_bert}", "--data-dir", str(beir_root), "--output", str(tmp_path / "out"),
                          "--cache-dir", str(tmp_path / "cache"), "--batch-size", "4", "--device", "cpu", "-q"]) == 0
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "| model | encoder | scifact |" in board and "| BM25 [MTEB] | bm25 |" not in board  # an MTEB task is its BEIR dataset's column; one evaluator here: no label
    (_, again) = run(spec)
    assert again.created_at == mres.created_at and again.metrics == mres.metrics


def test_mteb_without_local_data_fails_clearly(tmp_path, tiny_bert, monkeypatch):
    """No local folder and no network: the error says where to put the BEIR folder."""
    from pathlib import Path

    from benchmarks.pipeline import run

    if any(Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).glob("datasets/mteb___scifact*")):
        pytest.skip("MTEB's SciFact is in the Hugging Face cache, so MTEB can load it")
    monkeypatch.delenv("RETRIEVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("RETRIEVAL_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        run(_spec(tmp_path, [tiny_bert], empty))
