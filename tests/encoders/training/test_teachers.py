"""Distillation teachers: normalisation and temperature on hand-made scores, fusion of teachers, BM25 / MaxSim / cosine
teachers, and a tiny end-to-end ColBERT distillation from a fused bm25+dense teacher."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_slice
from encoders.bm25 import bm25_search
from encoders.training import teachers as T
from encoders.training.config import TrainConfig, check_teacher
from encoders.training.mining import MiningConfig

# ---------------------------------------------------------------- normalisation and temperature (pure)


def test_normalize_scores_hand_made():
    s = torch.tensor([[4.0, 2.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]])  # (n=2, n_ways=4)
    assert torch.equal(T.normalize_scores(s, "minmax"), torch.tensor([[1.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    z = T.normalize_scores(s, "zscore")  # row 0: mean 2, population std sqrt(2)
    torch.testing.assert_close(z[0], torch.tensor([2.0, 0.0, -2.0, 0.0]) / math.sqrt(2))
    assert torch.equal(z[1], torch.zeros(4))  # equal scores: 0, never 0/0
    assert torch.equal(T.normalize_scores(s, "none"), s)
    with pytest.raises(ValueError, match="none, minmax, zscore"):
        T.normalize_scores(s, "max")
    with pytest.raises(ValueError, match=r"\(n, n_ways\)"):
        T.normalize_scores(s[0], "minmax")


def test_logits_and_targets():
    s = torch.tensor([[0.9, 0.5, 0.1]])
    # norm none, T 1: softmax(scale * s), what distillation did before these options
    torch.testing.assert_close(T.teacher_targets(s, scale=20.0), torch.softmax(20.0 * s, dim=1))
    assert torch.allclose(T.teacher_logits(s, norm="minmax", temperature=0.25), torch.tensor([[4.0, 2.0, 0.0]]))
    # minmax removes the scale; a lower temperature sharpens
    torch.testing.assert_close(T.teacher_logits(s, norm="minmax", scale=20.0), T.teacher_logits(s, norm="minmax"))
    sharp, flat = T.teacher_targets(s, norm="minmax", temperature=0.25), T.teacher_targets(s, norm="minmax", temperature=4.0)
    assert sharp[0, 0] > 0.85 and flat[0, 0] < 0.4 and torch.allclose(sharp.sum(1), torch.ones(1))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            T.teacher_logits(s, temperature=bad)


# ---------------------------------------------------------------- fusing teachers


def test_fuse_candidate_scores():
    bm25 = [[12.0, 4.0, 8.0], [1.0, 3.0, 2.0]]  # (n=2, n_ways=3)
    dense = [[0.5, 0.9, 0.1], [0.3, 0.3, 0.9]]
    # combsum over per-query minmax: row 0 bm25 -> [1, 0, .5], dense -> [.5, 1, 0]
    assert T.fuse_candidate_scores([bm25, dense]) == [[1.5, 1.0, 0.5], [0.0, 1.0, 1.5]]
    assert T.fuse_candidate_scores([bm25, dense], weights=[0.25, 0.75]) == [[0.625, 0.75, 0.125], [0.0, 0.25, 0.875]]
    rrf = T.fuse_candidate_scores([bm25, dense], method="rrf", k=0)  # row 0 ranks: bm25 0,2,1 -> 1st,3rd,2nd; dense 2nd,1st,3rd
    assert rrf[0] == pytest.approx([1 + 1 / 2, 1 / 3 + 1, 1 / 2 + 1 / 3])
    with pytest.raises(ValueError, match="same candidates"):
        T.fuse_candidate_scores([bm25, [[1.0, 2.0]]])
    with pytest.raises(ValueError, match="at least two"):
        T.fuse_candidate_scores([bm25])


def test_parse_teacher_and_early_checks():
    assert T.parse_teacher("bm25+minilm") == [("bm25", None), ("minilm", None)]
    assert T.parse_teacher("runs/dpr") == [("runs/dpr", None)]
    check_teacher(TrainConfig(encoder="colbert", teacher="bm25*0.3+minilm*0.7"))
    with pytest.raises(ValueError, match="weight"):
        check_teacher(TrainConfig(encoder="colbert", teacher="bm25*0.3+minilm"))
    with pytest.raises(ValueError, match="temperature"):
        check_teacher(TrainConfig(encoder="colbert", teacher="bm25", teacher_temperature=0.0))
    check_teacher(TrainConfig(encoder="colbert", teacher="bm25", distill_in_batch=0.5), "cached-distillation")
    with pytest.raises(ValueError, match="--distill-in-batch 0.5 .* the loss is cached-contrastive"):  # would be silently ignored
        check_teacher(TrainConfig(encoder="colbert", distill_in_batch=0.5), "cached-contrastive")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            check_teacher(TrainConfig(encoder="colbert", teacher="bm25", distill_in_batch=bad), "distillation")


def test_teacher_scores_fuses_then_normalises(monkeypatch):
    raw = {"bm25": [[10.0, 0.0, 5.0]], "dense": [[0.2, 0.6, 1.0]]}
    monkeypatch.setattr(T, "one_teacher_scores", lambda name, q, d, cfg, corpus: raw[name])
    cfg = TrainConfig(encoder="colbert", teacher="bm25+dense", teacher_norm="minmax", teacher_temperature=0.5)
    # combsum of minmax: [1 + 0, 0 + .5, .5 + 1] = [1, .5, 1.5] -> minmax [.5, 0, 1] -> / 0.5
    np.testing.assert_allclose(T.teacher_scores(["q"], [["a", "b", "c"]], cfg), [[1.0, 0.0, 2.0]])
    single = dataclasses.replace(cfg, teacher="dense", teacher_norm="none", teacher_temperature=1.0, teacher_scale=10.0)
    np.testing.assert_allclose(T.teacher_scores(["q"], [["a", "b", "c"]], single), [[2.0, 6.0, 10.0]])


# ---------------------------------------------------------------- the teachers themselves


def test_bm25_teacher_scores_what_bm25_retrieval_scores():
    corpus = {"d1": {"title": "", "text": "protein folding in cells"}, "d2": {"title": "", "text": "aspirin and heart disease"},
              "d3": {"title": "", "text": "cells divide and cells grow"}, "d4": {"title": "", "text": "the weather today"}}
    texts = {d: c["text"] for d, c in corpus.items()}  # doc_text of an empty title is the text alone
    queries = {"q1": "how do cells fold protein", "q2": "heart aspirin"}
    run = bm25_search(corpus, queries, k=4)
    cands = [["d1", "d3", "d4"], ["d2", "d1", "d4"]]
    got = T.bm25_candidate_scores(list(queries.values()), [[texts[d] for d in row] for row in cands], list(texts.values()))
    want = [[run[q].get(d, 0.0) for d in row] for q, row in zip(queries, cands)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got[0][0] > got[0][1] > 0 and got[0][2] == 0.0
    assert T.bm25_candidate_scores(["zzz unknownword"], [["protein folding in cells"]], list(texts.values())) == [[0.0]]


class ToyColbert:
    """encode_queries / encode_documents as a ColbertEncoder: fixed token embeddings per text."""

    tokens = {"q": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
              "a": np.array([[1.0, 0.0], [0.0, 0.5]], dtype=np.float32), "b": np.array([[0.0, 2.0], [3.0, 3.0]], dtype=np.float32)}

    def encode_queries(self, texts):
        return [self.tokens[t] for t in texts]

    def encode_documents(self, texts):
        return [self.tokens[t] for t in texts]


def test_colbert_teacher_is_maxsim():
    assert T.colbert_candidate_scores(ToyColbert(), ["q"], [["a", "b", "a"]]) == [[1.5, 6.0, 1.5]]  # a: 1 + .5; b: 3 + 3


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def train_slice(data_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kd-data")
    write_slice(data_dir / "scifact", root / "sf", n_queries=8, extra_docs=40, split="train")
    return root


def test_tiny_colbert_distills_from_a_fused_bm25_dense_teacher(train_slice, tiny_bert, tmp_path):
    from encoders.training.trainer import train
    from encoders.training.trainset import build_train_set

    mining = MiningConfig(method="bm25", rank_start=1, rank_end=20, count=3, margin=None, max_ratio=None)
    cfg = TrainConfig(encoder="colbert", model=str(tiny_bert), data_dir=str(train_slice), train_data="sf", output=str(tmp_path / "kd"),
                      teacher=f"bm25+{tiny_bert}", teacher_norm="minmax", teacher_temperature=0.5, n_ways=4, batch_size=4, max_steps=3,
                      save_steps=100, logging_steps=1, query_length=16, doc_length=32, max_length=32, cache_dir=str(train_slice / "cache"),
                      device="cpu", seed=3, lr=1e-3)
    labels = np.array(build_train_set(cfg, mining, "distillation").dataset["scores"])  # (n, n_ways)
    assert labels.shape[1] == 4
    np.testing.assert_allclose(labels.max(1), 2.0)  # minmax / T=0.5: each query's best candidate 2, worst 0
    np.testing.assert_allclose(labels.min(1), 0.0)
    rec = train(cfg, mining)
    assert rec["loss"] == "distillation" and rec["steps"] == 3
    assert len(rec["loss_log"]) == 3 and all(math.isfinite(x) and x >= 0 for x in rec["loss_log"])
    assert rec["config"]["teacher_norm"] == "minmax" and rec["config"]["teacher_temperature"] == 0.5


def test_distillation_over_the_memory_budget_goes_through_gradcache(train_slice, tiny_bert, tmp_path, caplog):
    """--loss auto with a teacher, over --memory-budget-gb: cached-distillation in mini-batches, no whole-batch warning."""
    from encoders.training.trainer import train

    mining = MiningConfig(method="bm25", rank_start=1, rank_end=20, count=3, margin=None, max_ratio=None)
    cfg = TrainConfig(encoder="colbert", model=str(tiny_bert), data_dir=str(train_slice), train_data="sf", output=str(tmp_path / "kd"),
                      teacher="bm25", n_ways=4, batch_size=4, max_steps=2, save_steps=100, logging_steps=1, query_length=16,
                      doc_length=32, max_length=32, cache_dir=str(train_slice / "cache"), device="cpu", seed=3, memory_budget_gb=0.001)
    with caplog.at_level("WARNING", logger="encoders.training.trainer"):
        rec = train(cfg, mining)
    mem = rec["memory"]
    assert rec["loss"] == "cached-distillation" and rec["steps"] == 2
    assert mem["cached"] and mem["mini_batch_size"] == 1 and mem["source"] == "--memory-budget-gb"
    assert all(math.isfinite(x) and x >= 0 for x in rec["loss_log"])
    assert not any("has no GradCache" in r.getMessage() for r in caplog.records)


def test_distillation_with_in_batch_negatives_carries_ids_and_masks(train_slice, tiny_bert, tmp_path):
    """--distill-in-batch: the train set gets the qrels ids beside the teacher scores, the loss masks in-batch false negatives, the record counts them."""
    from encoders.training.trainer import train
    from encoders.training.trainset import build_train_set

    mining = MiningConfig(method="bm25", rank_start=1, rank_end=20, count=3, margin=None, max_ratio=None)
    cfg = TrainConfig(encoder="colbert", model=str(tiny_bert), data_dir=str(train_slice), train_data="sf", output=str(tmp_path / "kd"),
                      teacher="bm25", n_ways=4, batch_size=8, max_steps=2, save_steps=100, logging_steps=1, query_length=16,
                      doc_length=32, max_length=32, cache_dir=str(train_slice / "cache"), device="cpu", seed=3, distill_in_batch=1.0)
    ds = build_train_set(cfg, mining, "distillation").dataset
    assert {"query", "documents", "scores", "doc_ids", "relevant_ids"} <= set(ds.column_names)
    assert all(len(ids) == 4 for ids in ds["doc_ids"]) and all(ids[0] in rel for ids, rel in zip(ds["doc_ids"], ds["relevant_ids"]))
    off = build_train_set(dataclasses.replace(cfg, mask_false_negatives=False), mining, "distillation").dataset
    assert "doc_ids" not in off.column_names
    rec = train(cfg, mining)
    assert rec["loss"] == "distillation" and rec["steps"] == 2 and rec["config"]["distill_in_batch"] == 1.0
    assert rec["false_negative_mask"] and rec["in_batch_negatives_masked"] > 0  # a query's positive mined as another query's negative (4 per step here)
    assert all(math.isfinite(x) and x > 0 for x in rec["loss_log"])


def test_n_ways_above_the_mined_count_fails_before_mining(train_slice, tiny_bert, tmp_path, monkeypatch):
    from encoders.training import trainset

    monkeypatch.setattr(trainset, "_mine_negatives", lambda *a, **k: pytest.fail("mined before checking --mine-count"))
    cfg = TrainConfig(encoder="colbert", model=str(tiny_bert), data_dir=str(train_slice), train_data="sf", teacher="bm25", n_ways=6,
                      cache_dir=str(tmp_path / "cache"), device="cpu")
    with pytest.raises(ValueError, match="--n-ways 6 scores the positive and 5 mined negatives.*--mine-count is 4: pass --mine-count 5"):
        trainset.build_train_set(cfg, MiningConfig(method="bm25", count=4), "distillation")


@pytest.mark.parametrize("flag", ["--mine-model", "--guide", "--teacher"])
def test_dense_loading_refuses_a_colbert_folder_naming_the_flag(tiny_bert, tmp_path, flag):
    """A ColBERT student warm-started from a PyLate folder mines (and guides) with a dense model, not with itself (it once
    failed with sentence-transformers' "'MaxSim' is not a valid SimilarityFunction"); the error names the flag that chose it."""
    from encoders.training.models import load_dense

    folder = tmp_path / "colbert-run"  # a PyLate folder by its modules.json, as pylate saves it
    folder.mkdir()
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                                                     {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    with pytest.raises(ValueError, match=f"{flag} must be a single-vector \\(dense\\) model, but {folder} is a PyLate ColBERT folder"):
        load_dense(str(folder), TrainConfig(encoder="colbert"), 32, flag=flag)
    with pytest.raises(ValueError, match=f"pass a dense model \\(e.g. minilm\\) to {flag} or pass --mine-method bm25$"):
        load_dense(str(folder), TrainConfig(encoder="colbert"), 32, flag=flag, other=" or pass --mine-method bm25")
    model, _ = load_dense(str(tiny_bert), TrainConfig(device="cpu"), 32, flag=flag)
    assert model.encode(["a query"]).shape[0] == 1
