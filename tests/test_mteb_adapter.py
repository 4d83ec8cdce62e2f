"""The MTEB adapter offline: a hand-made BEIR folder handed to MTEB's SciFact task, a tiny random BERT.

Checks that ``mteb.evaluate`` runs without the network, that its nDCG@10 equals our runner's on
the same folder (within 0.001), and that both result files (MTEB's layout and ours) are written.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the Hugging Face hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest

from benchmarks.config import EvalConfig

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


def _cfg(tmp_path, model, data_root, **kw) -> EvalConfig:
    return EvalConfig(task="mteb", mteb_tasks="SciFact", models=str(model), data_dir=str(data_root), output=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), batch_size=4, device="cpu", **kw)


def test_local_task_reads_the_folder(beir_root):
    from benchmarks.mteb_adapter import local_task

    task = local_task("SciFact", beir_root / "scifact")
    task.load_data()
    data = task.dataset["default"]["test"]
    assert sorted(data["corpus"]["id"]) == sorted(DOCS)
    assert sorted(data["queries"]["id"]) == ["q1", "q2", "q3"]  # q4 has no qrels
    assert data["relevant_docs"]["q3"] == {"d8": 2, "d7": 1}
    assert data["corpus"]["title"][2] == "" and data["top_ranked"] is None
    assert task.local_beir.checksum and task.data_loaded


def test_unknown_task_says_did_you_mean():
    from benchmarks.mteb_adapter import get_task

    with pytest.raises(ValueError, match="SciFact"):
        get_task("SciFac", "test")


def test_protocols():
    from mteb.models import EncoderProtocol, SearchProtocol

    from benchmarks.mteb_adapter import MtebColbertSearch, MtebDenseModel, model_meta

    meta = model_meta("m", "sha256:abc", encoder_kind="dpr", embed_dim=4, max_tokens=8, similarity="cos")
    assert meta.revision == "sha256-abc"
    dense = MtebDenseModel(object(), meta)
    assert isinstance(dense, EncoderProtocol) and not isinstance(dense, SearchProtocol)
    assert isinstance(MtebColbertSearch(object(), meta), SearchProtocol)
    a, b = np.eye(2, 3, dtype=np.float32), np.array([[1, 2, 0], [0, 1, 1], [3, 0, 0]], np.float32)
    assert dense.similarity(a, b).tolist() == [[1, 0, 3], [2, 1, 0]]  # (2, 3)
    assert dense.similarity_pairwise(a, b[:2]).tolist() == [1, 1]


class _TokenEncoder:
    """Fake ColBERT encoder: each word is a one-hot token over a 4-word vocabulary."""

    VOCAB = {"a": 0, "b": 1, "c": 2, "d": 3}

    def _enc(self, texts):
        return [np.eye(4, dtype=np.float32)[[self.VOCAB[w] for w in t.split()]] for t in texts]

    encode_queries = encode_documents = _enc


def test_colbert_search_is_exact_maxsim():
    pytest.importorskip("retrieval.maxsim")  # the ColBERT engineer's module
    from datasets import Dataset

    from benchmarks.mteb_adapter import MtebColbertSearch

    search = MtebColbertSearch(_TokenEncoder(), meta=None, chunk_docs=2)  # 3 chunks over 5 docs
    corpus = Dataset.from_dict({"id": ["x", "y", "z", "w", "v"], "title": ["a", "", "", "", ""], "text": ["b", "c", "a b", "d", "a c d"]})
    search.index(corpus, task_metadata=None, hf_split="test", hf_subset="default", encode_kwargs={})
    queries = Dataset.from_dict({"id": ["q"], "text": ["a b d"]})
    run = search.search(queries, task_metadata=None, hf_split="test", hf_subset="default", top_k=3, encode_kwargs={})
    # MaxSim = query words found in the document: x="a b" 2, z="a b" 2, v="a c d" 2, y 0, w 1
    assert run == {"q": {"x": 2.0, "z": 2.0, "v": 2.0}}


def test_our_metrics_names():
    from benchmarks.mteb_adapter import our_metrics

    scores = {"ndcg_at_10": 0.5, "ndcg_at_20": 0.6, "recall_at_100": 1, "mrr_at_10": float("nan"), "main_score": 0.5, "hf_subset": "default", "languages": ["eng-Latn"], "nauc_ndcg_at_1_max": 0.1}
    assert our_metrics(scores, "ndcg_at_10") == {"ndcg@10": 0.5, "recall@100": 1.0}
    assert our_metrics({"cosine_spearman": 0.7, "main_score": 0.7}, "cosine_spearman") == {"cosine_spearman": 0.7}


def test_mteb_on_local_folder_matches_runner(tmp_path, beir_root, tiny_bert):
    from mteb import TaskResult

    from benchmarks.mteb_adapter import LOCAL_REVISION_PREFIX, run_mteb
    from benchmarks.results import load_results
    from benchmarks.runner import run_retrieval

    cfg = _cfg(tmp_path, tiny_bert, beir_root)
    (mres,) = run_mteb(cfg)
    (ours,) = run_retrieval(EvalConfig(datasets=str(beir_root / "scifact"), models=str(tiny_bert), output=str(tmp_path / "ours"), cache_dir=str(tmp_path / "cache"), batch_size=4, device="cpu"), [str(beir_root / "scifact")])
    for metric in ("ndcg@10", "recall@100", "map@100"):
        assert abs(mres.metrics[metric] - ours.metrics[metric]) <= 1e-3, metric
    assert (mres.task, mres.dataset, mres.num_queries, mres.num_docs) == ("mteb", "SciFact (MTEB)", 3, 8)
    assert mres.provenance["dataset_checksum"] == ours.provenance["dataset_checksum"]
    assert "local BEIR folder" in mres.provenance["data_source"]

    # MTEB's layout: <output>/mteb/<model>/<revision>/SciFact.json + model_meta.json, read by MTEB itself
    (path,) = (tmp_path / "out" / "mteb").glob("*/*/SciFact.json")
    assert (path.parent / "model_meta.json").is_file()
    tr = TaskResult.from_disk(path)
    assert tr.task_name == "SciFact" and tr.dataset_revision == LOCAL_REVISION_PREFIX + ours.provenance["dataset_checksum"]
    assert tr.get_score() == pytest.approx(mres.metrics["ndcg@10"])
    assert path.parent.name == mres.provenance["model_revision"].replace(":", "-")

    # our Result JSON is on the leaderboard; a second identical run is served from it
    assert [r.task for r in load_results(tmp_path / "out")] == ["mteb"]
    assert "SciFact (MTEB)" in (tmp_path / "out" / "leaderboard.md").read_text()
    (again,) = run_mteb(cfg)
    assert again.created_at == mres.created_at and again.metrics == mres.metrics


def test_mteb_without_local_data_fails_clearly(tmp_path, tiny_bert, monkeypatch):
    """No local folder and no network: the error says where to put the BEIR folder."""
    from pathlib import Path

    from benchmarks.mteb_adapter import run_mteb

    if any(Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).glob("datasets/mteb___scifact*")):
        pytest.skip("MTEB's SciFact is in the Hugging Face cache, so MTEB can load it")
    monkeypatch.delenv("RETRIEVAL_DATA_DIR", raising=False)
    monkeypatch.setenv("RETRIEVAL_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        run_mteb(_cfg(tmp_path, tiny_bert, empty))
