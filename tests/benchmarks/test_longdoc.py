"""Long-document suites (deterministic, needle really inside at the stated length) and MaxP vs truncation."""

import json

import numpy as np
import pytest

import evaluate
from benchmarks import longdoc
from retrieval.beir import load_beir
from benchmarks.results import load_results
from retrieval.maxp import chunk_text, max_over_chunks


@pytest.fixture(scope="module")
def tok():
    return longdoc.reference_tokenizer()


@pytest.mark.parametrize("suite", ["passkey", "needle"])
@pytest.mark.parametrize("length", [256, 2048])
def test_synthetic_suite_length_and_needle(tok, suite, length):
    spec = longdoc.LongDocSpec(suite, length, n_docs=8)
    corpus, queries, qrels, depth = longdoc.generate_synthetic(spec, tok)
    assert len(corpus) == len(queries) == 8
    for qid, rel in qrels.items():
        (did,) = rel
        text, query = corpus[did]["text"], queries[qid]
        n = longdoc.count_tokens(tok, text)
        assert length - 12 <= n <= length, f"{did}: {n} tokens for target {length}"
        who = query.split(" for ")[-1].rstrip("?") if suite == "passkey" else query.split(" in ")[-1].rstrip("?")
        assert who in text and text.count(who) == (2 if suite == "passkey" else 1)
        if suite == "passkey":
            key = text.split(f"The pass key for {who} is ")[1].split(".")[0]
            assert key.isdigit() and len(key) == 5
        assert 0.0 <= depth[did] <= 1.0
    again = longdoc.generate_synthetic(spec, tok)
    assert again[0] == corpus and again[1] == queries  # deterministic


def test_needle_depths_spread_over_the_document(tok):
    _, _, _, depth = longdoc.generate_synthetic(longdoc.LongDocSpec("passkey", 4096, n_docs=30), tok)
    d = np.array(list(depth.values()))
    assert (d > 0.5).sum() >= 5 and (d < 0.5).sum() >= 5  # many needles lie past a 512-token window


def test_concat_suite(tok, data_dir, tmp_path):
    folder = longdoc.materialize("concat-2048", tmp_path, str(data_dir), tok)
    ds = load_beir(folder, "test")
    meta = json.loads((folder / "generator.json").read_text())
    assert max(meta["tokens"].values()) <= 2048 and np.median(list(meta["tokens"].values())) > 1500
    src = load_beir(data_dir / "scifact", "test")
    for qid, rel in list(ds.qrels.items())[:20]:
        for did in rel:
            assert any(src.corpus[a]["text"].strip() in ds.corpus[did]["text"] for a in src.qrels[qid] if a in src.corpus)
    assert longdoc.materialize("concat-2048", tmp_path, str(data_dir), tok) == folder  # cached


def test_chunk_text_windows(tok):
    text = " ".join(f"word{i}" for i in range(50))
    pieces = chunk_text(text, tok, window=20)
    assert "".join(p.replace(" ", "") for p in pieces) == text.replace(" ", "")
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 20 for p in pieces)
    overlapping = chunk_text(text, tok, window=20, stride=10)
    assert len(overlapping) > len(pieces)


def test_max_over_chunks_hand_made():
    # chunks 0,1 -> doc 0; chunk 2 -> doc 1; chunk 3 -> doc 2
    D = np.array([[0.9, 0.8, 0.5, 0.1], [0.7, 0.6, -1.0, -1.0]], dtype=np.float32)
    I = np.array([[1, 0, 3, 2], [2, 3, -1, -1]])
    Dd, Id = max_over_chunks(D, I, np.array([0, 0, 1, 2]), k=3)
    assert Id.tolist() == [[0, 2, 1], [1, 2, -1]]
    np.testing.assert_allclose(Dd[0], [0.9, 0.5, 0.1])


def test_maxp_beats_truncation_on_late_needle(tmp_path, minilm_path):
    """Hand-made: the answer sits past the first window. Truncation cannot see it; MaxP can."""
    from tests.conftest import make_beir

    filler = " ".join(["The grass is green. The sky is blue."] * 40)  # ~400 tokens
    corpus = [
        {"_id": "late", "text": filler + " The pass key for Zelda is 48213."},
        {"_id": "other", "text": filler + " The pass key for Bruno is 11111."},
        {"_id": "other2", "text": filler + " The pass key for Hiro is 22222."},
    ]
    queries = [{"_id": "q", "text": "What is the pass key for Zelda?"}]
    make_beir(tmp_path / "data" / "toy", corpus, queries, "query-id\tcorpus-id\tscore\nq\tlate\t1\n")
    common = ["--data-dir", str(tmp_path / "data"), "--datasets", "toy", "--models", "minilm", "--max-length", "128", "--cache-dir", str(tmp_path / "c"), "-q"]
    assert evaluate.main(common + ["--output", str(tmp_path / "t"), "--save-run"]) == 0
    assert evaluate.main(common + ["--output", str(tmp_path / "m"), "--doc-handling", "maxp"]) == 0
    trunc, maxp = load_results(tmp_path / "t")[0], load_results(tmp_path / "m")[0]
    assert maxp.metrics["mrr@10"] == 1.0
    from retrieval.runfile import read_trec

    scores = read_trec(tmp_path / "t" / "runs" / f"{trunc.stem}.trec")["q"]
    assert max(scores.values()) - min(scores.values()) < 1e-5  # truncated: the three documents look identical
    assert maxp.timings["chunks"] >= 9  # 3 docs x ~4 windows of 126 tokens
