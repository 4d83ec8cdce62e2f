"""The Python API (modernretrieval/api.py) and the Trainer evaluator (modernretrieval/evaluator.py), on a tiny random BERT."""

from __future__ import annotations

import pytest
import torch

from benchmarks.results import load_results
from encoders.dpr import DenseEncoder
from modernretrieval import api
from modernretrieval.evaluator import RetrievalEvaluator
from tests.invariants.conftest import synthetic_rows, write_folder


@pytest.fixture
def data(tmp_path):
    return write_folder(tmp_path / "data" / "fruit", *synthetic_rows())


@pytest.fixture
def st_model(tiny_bert):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(tiny_bert))
    return SentenceTransformer(modules=[transformer, models.Pooling(transformer.get_word_embedding_dimension(), "mean")], device="cpu")


@pytest.fixture
def encoded(monkeypatch):
    n = {"texts": 0}
    real = DenseEncoder.encode_documents

    def count(self, texts):
        n["texts"] += len(texts)
        return real(self, texts)

    monkeypatch.setattr(DenseEncoder, "encode_documents", count)
    return n


def test_a_model_in_memory_runs_the_pipeline_is_cached_and_keyed_by_its_weights(tmp_path, data, st_model, encoded):
    common = {"output": tmp_path / "out", "cache_dir": str(tmp_path / "cache"), "batch_size": 8}
    (a,) = api.evaluate(st_model, [str(data)], name="tiny", **common)
    assert a.model == "tiny" and a.encoder == "dpr" and a.per_query["qids"] and 0 <= a.metrics["ndcg@10"] <= 1
    assert a.provenance["model_revision"].startswith("mem-sha256:") and a.provenance["backbone"] == "as held in memory"
    assert load_results(tmp_path / "out")[0].config_key == a.config_key  # saved like any result
    first = encoded["texts"]
    (b,) = api.evaluate(st_model, [str(data)], name="tiny", **common)
    assert (b.created_at, b.config_key) == (a.created_at, a.config_key) and encoded["texts"] == first  # the cache: nothing encoded again
    with torch.no_grad():
        next(st_model.parameters()).view(-1)[0] += 0.5  # one weight, edited in place
    (c,) = api.evaluate(st_model, [str(data)], name="tiny", **common)
    assert c.config_key != a.config_key and encoded["texts"] > first  # another model: encoded again, another result


def test_in_memory_and_by_path_give_the_same_numbers(tmp_path, data, tiny_bert, st_model):
    common = {"output": tmp_path / "out", "cache_dir": str(tmp_path / "cache"), "batch_size": 8, "pooling": None}
    (by_path,) = api.evaluate(str(tiny_bert), [str(data)], device="cpu", pooling="mean", output=tmp_path / "o1", cache_dir=str(tmp_path / "c1"), batch_size=8)
    (held,) = api.evaluate(st_model, [str(data)], **common)
    assert held.per_query == by_path.per_query


def test_the_model_is_left_as_it_was_and_changes_are_refused(tmp_path, data, st_model):
    st_model.train()
    api.evaluate(st_model, [str(data)], output=tmp_path / "out", cache_dir=str(tmp_path / "cache"))
    assert st_model.training  # the trainer gets its training mode back
    for bad in ({"pooling": "cls"}, {"max_length": 16}, {"dtype": "bf16"}):
        with pytest.raises(ValueError, match="would change the model passed in memory"):
            api.evaluate(st_model, [str(data)], output=tmp_path / "out", cache_dir=str(tmp_path / "cache"), **bad)


def test_a_pylate_colbert_in_memory(tmp_path, data, tiny_bert):
    from pylate.models import ColBERT

    model = ColBERT(str(tiny_bert), device="cpu", query_length=16, document_length=48, embedding_size=16)
    (r,) = api.evaluate(model, [str(data)], output=tmp_path / "out", cache_dir=str(tmp_path / "cache"), index="exact", query_length=16, doc_length=48)
    assert r.encoder == "colbert" and r.provenance["query_length"] == 16 and r.provenance["doc_length"] == 48
    with pytest.raises(ValueError, match="keeps its own lengths"):
        api.evaluate(model, [str(data)], output=tmp_path / "out", cache_dir=str(tmp_path / "cache"), doc_length=200)


def test_leaderboard_renders_every_format_with_significance(tmp_path, data, st_model):
    (dense,) = api.evaluate(st_model, [str(data)], name="tiny", output=tmp_path / "a", cache_dir=str(tmp_path / "cache"))
    (bm25,) = api.evaluate("bm25", [str(data)], output=tmp_path / "b")
    md = api.leaderboard([dense, bm25], tmp_path / "tables", baseline="BM25")
    assert "| tiny | dpr |" in md and "Baseline: BM25 (bm25)" in md
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "leaderboard.html"):
        assert (tmp_path / "tables" / name).is_file()
    assert len(load_results(tmp_path / "tables")) == 2


def test_the_trainer_evaluator_logs_ndcg_during_training(tmp_path, data, st_model):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses

    evaluator = RetrievalEvaluator(str(data), queries=8, distractors=30, name="fruit", cache_dir=tmp_path / "cache", batch_size=8)
    pairs = Dataset.from_dict({"anchor": ["apple banana", "cherry date", "fig grape", "kiwi lemon"] * 4, "positive": ["banana apple pie", "date cherry", "grape fig", "lemon kiwi"] * 4})
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=4, per_device_train_batch_size=4, eval_strategy="steps", eval_steps=2,
                                                logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=st_model, args=args, train_dataset=pairs, loss=losses.MultipleNegativesRankingLoss(st_model), evaluator=evaluator)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "eval_fruit_ndcg@10" in h]
    assert [h["step"] for h in logged] == [2, 4] and all("eval_fruit_recall@100" in h for h in logged)
    assert [h["steps"] for h in evaluator.history] == [2, 4] and evaluator.history[0]["result"] != evaluator.history[1]["result"]  # each step's weights: its own result


def test_train_eval_every_logs_ndcg_on_a_scifact_slice(tmp_path, train_slice, scifact_slice, tiny_bert):
    """``train.py --eval-every 2 --eval-data <SciFact test slice>``: the evaluator runs at steps 2 and 4; train_result.json keeps its log."""
    import json

    from modernretrieval.cli import train as train_cli

    rc = train_cli.main(["--model", str(tiny_bert), "--data-dir", str(train_slice), "--train-data", "sf", "--output", str(tmp_path / "run"), "--batch-size", "4",
                         "--max-steps", "4", "--max-length", "32", "--device", "cpu", "--mine-method", "none", "--cache-dir", str(tmp_path / "cache"), "-q",
                         "--eval-data", str(scifact_slice), "--eval-every", "2"])
    assert rc == 0
    log = json.loads((tmp_path / "run" / "train_result.json").read_text())["eval_log"]
    assert [h["step"] for h in log] == [2, 4] and all(0 <= h["eval_scifact-slice_ndcg@10"] <= 1 and "eval_scifact-slice_recall@100" in h for h in log)
