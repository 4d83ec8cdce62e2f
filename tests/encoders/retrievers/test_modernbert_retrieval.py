"""A tiny random ModernBERT checkpoint through evaluate.py, on our unpadded backbone and on transformers'."""

import pytest

import evaluate
from benchmarks.results import load_results


@pytest.fixture(scope="module")
def tiny_modernbert(tmp_path_factory):
    from encoders.tiny_modernbert import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-mb") / "tiny-modernbert")


def test_tiny_modernbert_dpr_unpadded_equals_padded(tmp_path, scifact_slice, tiny_modernbert, caplog):
    # --max-length 300: the tiny tokenizer splits SciFact abstracts into ~1,200 tokens each; 300 still spans several 128-token windows
    common = ["--datasets", str(scifact_slice), "--models", str(tiny_modernbert), "--cache-dir", str(tmp_path / "c"), "--max-length", "300"]
    with caplog.at_level("INFO"):
        assert evaluate.main(common + ["--output", str(tmp_path / "ours")]) == 0
    assert any("unpadded backbone, attention backend sdpa_blocked" in r.message for r in caplog.records)
    assert evaluate.main(common + ["--output", str(tmp_path / "hf"), "--no-unpadded", "--no-cache"]) == 0
    ours, hf = load_results(tmp_path / "ours")[0], load_results(tmp_path / "hf")[0]
    assert ours.provenance["backbone"] == "unpadded ModernBERT (sdpa_blocked)" and ours.provenance["max_length"] == 300
    assert hf.provenance["backbone"].startswith("transformers")
    assert ours.num_queries == 30 and 0.0 <= ours.metrics["ndcg@10"] <= 1.0
    assert ours.metrics["ndcg@10"] == pytest.approx(hf.metrics["ndcg@10"], abs=1e-4)


def test_tiny_modernbert_colbert_unpadded_equals_padded(tmp_path, scifact_slice, tiny_modernbert, caplog):
    # the same checkpoint as a ColBERT (PyLate wrapper): our backbone replaces its auto_model too
    common = ["--datasets", str(scifact_slice), "--models", str(tiny_modernbert), "--encoder", "colbert",
              "--index", "exact", "--cache-dir", str(tmp_path / "c")]
    with caplog.at_level("INFO"):
        assert evaluate.main(common + ["--output", str(tmp_path / "ours")]) == 0
    assert any("unpadded backbone, attention backend sdpa_blocked" in r.message for r in caplog.records)
    assert evaluate.main(common + ["--output", str(tmp_path / "hf"), "--no-unpadded", "--no-cache"]) == 0
    ours, hf = load_results(tmp_path / "ours")[0], load_results(tmp_path / "hf")[0]
    assert ours.provenance["backbone"] == "unpadded ModernBERT (sdpa_blocked)"
    assert hf.provenance["backbone"].startswith("transformers")
    assert ours.num_queries == 30 and 0.0 <= ours.metrics["ndcg@10"] <= 1.0
    assert ours.metrics["ndcg@10"] == pytest.approx(hf.metrics["ndcg@10"], abs=1e-4)


def test_backbone_settings_key_results_and_embeddings(tmp_path, scifact_slice, tiny_modernbert):
    """Issue 17 #3: --no-unpadded and --attn-backend change the result key and the embedding cache, so a
    parity run in one output folder and one cache compares two computations, never a result with itself."""
    common = ["--datasets", str(scifact_slice), "--models", str(tiny_modernbert), "--cache-dir", str(tmp_path / "c"), "--output", str(tmp_path / "out"), "--max-length", "64", "-q"]
    for extra in ([], ["--no-unpadded"], ["--attn-backend", "sdpa_loop"]):
        assert evaluate.main(common + extra) == 0
    results = load_results(tmp_path / "out")
    assert len({r.config_key for r in results}) == 3 and len(results) == 3
    assert all(r.timings["corpus_shards_encoded"] > 0 for r in results)  # each setting encoded its own corpus
    assert sorted(r.provenance["backbone"] for r in results) == ["transformers (padded, --no-unpadded)", "unpadded ModernBERT (sdpa_blocked)", "unpadded ModernBERT (sdpa_loop)"]
