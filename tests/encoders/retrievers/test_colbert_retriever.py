"""ColBERT through evaluate.py on a real SciFact slice with the offline MiniLM, cache reuse, and the --index mapping."""

import json
from pathlib import Path

import pytest

from encoders.retrievers.colbert import backend_for
from benchmarks.results import load_results

SCIFACT = Path("/work/shared/data/scifact")


def test_index_flag_mapping():
    assert backend_for("flat") == ("exact", {}) and backend_for("exact") == ("exact", {})
    assert backend_for("faiss") == ("faiss", {}) and backend_for("plaid") == ("plaid", {})
    assert backend_for("IVF256,PQ16x8") == ("faiss", {"factory": "IVF256,PQ16x8"})
    assert backend_for("HNSW32") == ("faiss", {"factory": "HNSW32"})
    with pytest.raises(ValueError, match="exact .*faiss.*plaid"):
        backend_for("hnsw-typo")


def _slice(dst: Path, n_queries=12, n_docs=60) -> Path:
    """The docs judged for the first ``n_queries`` test queries, plus the first docs of the corpus up to ``n_docs``."""
    rows = [line.rstrip("\n").split("\t") for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    qids = list(dict.fromkeys(r[0] for r in rows))[:n_queries]
    rel = {r[1] for r in rows if r[0] in qids}
    docs = []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            if d["_id"] in rel or len(docs) < n_docs - len(rel):
                docs.append(d)
    (dst / "qrels").mkdir(parents=True)
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (dst / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows if r[0] in qids))
    queries = [json.loads(x) for x in (SCIFACT / "queries.jsonl").read_text().splitlines()]
    (dst / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in qids))
    return dst


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs /work/shared/data/scifact")
def test_colbert_end_to_end_and_cache_reuse(tmp_path):
    import evaluate

    data = _slice(tmp_path / "scifact")
    common = ["--datasets", str(data), "--models", "minilm", "--encoder", "colbert", "--doc-length", "128", "--index", "exact", "--cache-dir", str(tmp_path / "cache"), "--top-k", "50", "-q"]
    assert evaluate.main(common + ["--output", str(tmp_path / "r1")]) == 0
    (first,) = load_results(tmp_path / "r1")
    assert first.encoder == "colbert" and first.num_queries == 12
    assert first.timings["corpus_shards_encoded"] == 1
    prov = first.provenance
    assert prov["doc_length"] == 128 and prov["query_length"] == 32 and prov["dim"] == 128 and prov["colbert_backend"] == "exact"
    assert prov["model_revision"].startswith("sha256:") and prov["projection_seed"] == 0 and prov["query_prefix"] == "[Q] "
    assert 0.5 < first.metrics["ndcg@10"] <= 1.0  # 12 queries over 60 docs: a working ColBERT finds most judged docs
    stores = list((tmp_path / "cache" / "retrievers" / "colbert").glob("*/corpus"))
    assert len(stores) == 1 and (stores[0] / "meta.json").is_file()

    # same cache, fresh output folder: nothing re-encoded (the untrained projection is seeded), identical scores
    assert evaluate.main(common + ["--output", str(tmp_path / "r2")]) == 0
    (second,) = load_results(tmp_path / "r2")
    assert second.timings["corpus_shards_encoded"] == 0
    assert second.metrics == first.metrics and second.config_key == first.config_key


def test_new_projection_is_seeded():
    """A plain checkpoint gets a new random projection and marker rows: two loads must be bit-identical, or caches lie."""
    import torch

    from encoders.colbert import ColbertConfig, load_colbert
    from encoders.loading import resolve_model

    path = resolve_model("minilm").path
    torch.manual_seed(1)
    a = load_colbert(path, ColbertConfig(doc_length=64))
    torch.manual_seed(123)  # a different caller RNG state: the seed is set inside load_colbert
    b = load_colbert(path, ColbertConfig(doc_length=64))
    assert a[-1].linear.weight.shape == (128, 384)
    assert torch.equal(a[-1].linear.weight, b[-1].linear.weight)
    assert torch.equal(a[0].auto_model.get_input_embeddings().weight, b[0].auto_model.get_input_embeddings().weight)  # [Q]/[D] rows


def test_colbert_result_key_follows_the_backend_defaults(monkeypatch):
    """A cached ColBERT result is reused only under the same search settings; DPR keys do not depend on them."""
    from benchmarks import models
    from benchmarks.pipeline import result_key
    from benchmarks.spec import make_spec
    from encoders.retrievers import colbert

    class Job:
        def identity(self):
            return {"dataset": "abc", "split": "test"}

    col_spec, dpr_spec = make_spec(encoder="colbert", index="faiss"), make_spec(encoder="dpr", index="flat")
    col_r, dpr_r = models.build("minilm", col_spec), models.build("minilm", dpr_spec)
    keys = lambda: (result_key(Job(), col_r, col_spec), result_key(Job(), dpr_r, dpr_spec))
    (col, dpr) = keys()
    assert colbert.search_settings("faiss")["n_rerank"] == colbert.FaissTokenIndex().n_rerank
    monkeypatch.setattr(colbert, "search_settings", lambda name: {"k_tokens": 1})
    (col2, dpr2) = keys()
    assert col2 != col and dpr2 == dpr
