"""Training end to end on tiny models (CPU, seconds): resume, checkpoints, ModernBERT paths; data and CLI checks."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BM25, ROOT, tiny_train_cfg
from encoders.training.config import TrainConfig, resolve_loss
from encoders.training.data import load_jsonl_examples, parse_train_data
from encoders.training.mining import MiningConfig
from encoders.training.sampler import WarmupNoDuplicatesBatchSampler
from encoders.training.trainer import train
from retrieval.beir import DataError


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(Path(folder).glob("model.safetensors"))))


# ------------------------------------------------------------------ resume and checkpoints


@pytest.fixture(scope="module")
def dpr_run(train_slice, tiny_bert, tmp_path_factory) -> tuple[TrainConfig, dict]:
    out = tmp_path_factory.mktemp("dpr") / "run"
    cfg = tiny_train_cfg(train_slice, tiny_bert, out, lr=1e-3)
    return cfg, train(cfg, BM25)


def test_resume_after_interruption_gives_same_weights(dpr_run, tmp_path):
    import shutil

    cfg, full = dpr_run
    # The interrupted run: what a kill after step 2 leaves behind (checkpoint-2 only, no final model).
    out = tmp_path / "interrupted"
    shutil.copytree(Path(cfg.output) / "checkpoints" / "checkpoint-2", out / "checkpoints" / "checkpoint-2")
    resumed = train(dataclasses.replace(cfg, output=str(out), resume=True), BM25)
    assert resumed["resumed_from"].endswith("checkpoint-2") and resumed["steps"] == 4
    a, b = weights(cfg.output), weights(out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert resumed["loss_log"] == full["loss_log"]  # steps 1-2 restored from the checkpoint, 3-4 recomputed equal
    # and training really moved the weights away from the initial model
    init = weights(Path(cfg.model))
    common = init.keys() & a.keys()
    assert common and any(not torch.equal(init[k], a[k]) for k in common)


def test_resume_from_the_last_step_trains_nothing_more(dpr_run, tmp_path):
    import shutil

    cfg, _ = dpr_run
    # 3 steps end mid-epoch (the slice has more batches): transformers alone takes a 4th step on resume
    cfg = dataclasses.replace(cfg, max_steps=3, save_steps=3, output=str(tmp_path / "full"))
    train(cfg, BM25)
    out = tmp_path / "killed-while-saving"
    shutil.copytree(Path(cfg.output) / "checkpoints" / "checkpoint-3", out / "checkpoints" / "checkpoint-3")
    resumed = train(dataclasses.replace(cfg, output=str(out), resume=True), BM25)
    assert resumed["resumed_from"].endswith("checkpoint-3") and resumed["steps"] == 3 and resumed["train_loss"] is None
    a, b = weights(cfg.output), weights(out)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_dpr_checkpoint_roundtrips_through_sentence_transformer(dpr_run, train_slice):
    from sentence_transformers import SentenceTransformer

    cfg, record = dpr_run
    final = SentenceTransformer(cfg.output, device="cpu")
    last = SentenceTransformer(str(Path(cfg.output) / "checkpoints" / "checkpoint-4"), device="cpu")
    texts = ["a protein binds a receptor", "vitamin D and bone density"]
    np.testing.assert_array_equal(final.encode(texts), last.encode(texts))
    assert final.max_seq_length == 32
    saved = json.loads((Path(cfg.output) / "train_result.json").read_text())
    assert saved["loss"] == "mnrl" and saved["data"]["mining"]["method"] == "bm25" and saved["data"]["checksum"]
    assert saved["config"]["seed"] == 7 and saved["git_commit"]


def test_evaluate_cli_reads_the_checkpoint(dpr_run, train_slice, tmp_path):
    cfg, _ = dpr_run
    r = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--models", cfg.output, "--datasets", str(train_slice / "sf"), "--split", "train",
                        "--output", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "c"), "-q"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "run" in r.stdout  # the leaderboard row names the model folder


# ------------------------------------------------------------------ tiny ModernBERT through both paths


@pytest.fixture(scope="module")
def tiny_modernbert(tmp_path_factory) -> Path:
    from encoders.tiny_modernbert import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-mb") / "mb")


def _falls(losses: list[float]) -> bool:
    k = max(1, len(losses) // 3)
    return sum(losses[-k:]) / k < sum(losses[:k]) / k


def test_tiny_modernbert_dpr_trains_unpadded_with_gradcache_and_batch_warmup(train_slice, tiny_modernbert, tmp_path):
    from sentence_transformers import SentenceTransformer

    cfg = tiny_train_cfg(train_slice, tiny_modernbert, tmp_path / "mb-dpr", lr=2e-3, batch_size=8, mini_batch_size=4, max_steps=-1, epochs=6,
                   batch_warmup_samples=16, batch_warmup_start=4, max_examples=16, save_steps=1000)
    rec = train(cfg, MiningConfig(method="none"))
    assert rec["loss"] == "cmnrl"
    assert rec["unpadded_backend"] is not None, "ModernBERT should train through encoders/modernbert_st.py"
    assert _falls(rec["loss_log"]), rec["loss_log"]
    st = SentenceTransformer(cfg.output, device="cpu")
    assert st.encode(["hello world"]).shape == (1, 64)


def test_tiny_modernbert_colbert_contrastive_then_distillation(train_slice, tiny_modernbert, tiny_bert, tmp_path):
    from pylate.models import ColBERT

    mining = MiningConfig(method="bm25", rank_start=1, rank_end=20, count=3, margin=None, max_ratio=None)
    cfg = tiny_train_cfg(train_slice, tiny_modernbert, tmp_path / "mb-colbert", encoder="colbert", lr=2e-3, batch_size=8, max_steps=-1, epochs=4,
                   max_examples=16, save_steps=1000)
    rec = train(cfg, mining)
    assert rec["loss"] == "contrastive" and rec["unpadded_backend"] is not None
    assert _falls(rec["loss_log"]), rec["loss_log"]

    # distillation from a dense teacher (any model we can score with), starting from the contrastive ColBERT
    cfg2 = dataclasses.replace(cfg, model=cfg.output, output=str(tmp_path / "mb-colbert-kd"), teacher=str(tiny_bert), teacher_scale=20.0, n_ways=4)
    rec2 = train(cfg2, mining)
    assert rec2["loss"] == "distillation" and rec2["data"]["negatives_per_example"] == 3
    assert _falls(rec2["loss_log"]), rec2["loss_log"]

    # the checkpoint round-trips through PyLate's own loader
    a = ColBERT(cfg2.output, device="cpu", query_length=16, document_length=32)
    torch.manual_seed(0)
    b = ColBERT(cfg2.output, device="cpu", query_length=16, document_length=32)
    ea = a.encode(["cells divide"], is_query=False)[0]
    eb = b.encode(["cells divide"], is_query=False)[0]
    np.testing.assert_array_equal(ea, eb)
    assert ea.shape[1] == 128


# ------------------------------------------------------------------ batch-size warmup sampler


def test_warmup_sampler_sizes_and_no_duplicates():
    import datasets

    rows = {"anchor": [f"q{i % 6}" for i in range(24)], "positive": [f"d{i}" for i in range(24)]}  # each query 4 times
    s = WarmupNoDuplicatesBatchSampler(datasets.Dataset.from_dict(rows), start=2, end=5, warmup_samples=8, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(24))
    for b in batches:
        anchors = [rows["anchor"][i] for i in b]
        assert len(anchors) == len(set(anchors))
    assert [len(b) for b in batches[:3]] == [2, 2, 3]  # warmup_batch_size at 0, 2, 4 samples seen
    assert max(len(b) for b in batches) == 5
    s.set_epoch(1)
    assert list(s) != batches


# ------------------------------------------------------------------ data, losses, CLI


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"query": "q1", "positive": "d1", "negatives": ["n1"]}\n{"query": "q2"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl, line 2: field 'positive' is missing"):
        load_jsonl_examples(p)
    p.write_text('{"query": "q1", "positive": "d1", "negatives": "n1"}\n')
    with pytest.raises(DataError, match=r"line 1: field 'negatives' must be a list"):
        load_jsonl_examples(p)
    p.write_text('{"query": "q1", "positive": "d1"\n')
    with pytest.raises(DataError, match=r"line 1: malformed JSON"):
        load_jsonl_examples(p)
    p.write_text('{"query": "q1", "positive": "d1", "negatives": ["n1", "n2"]}\n\n{"query": "q2", "positive": "d2"}\n')
    ex = load_jsonl_examples(p)
    assert ex.queries == ["q1", "q2"] and ex.negatives == [["n1", "n2"], []]


def test_parse_train_data():
    assert parse_train_data("scifact") == parse_train_data("scifact:train")
    assert parse_train_data("nfcorpus:dev").split == "dev"
    assert parse_train_data("x/pairs.jsonl").kind == "jsonl"
    assert parse_train_data("msmarco").kind == "msmarco"


def test_msmarco_offline_error_names_the_dataset():
    code = "from encoders.training.data import load_msmarco\nload_msmarco('dpr')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode != 0
    assert "sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1" in r.stderr
    assert "triplet-hard" in r.stderr and "save_to_disk" in r.stderr and "--train-data" in r.stderr


def test_resolve_loss():
    assert resolve_loss(TrainConfig()) == "mnrl"
    assert resolve_loss(TrainConfig(batch_size=64, mini_batch_size=16)) == "cmnrl"
    assert resolve_loss(TrainConfig(encoder="colbert")) == "contrastive"
    assert resolve_loss(TrainConfig(encoder="colbert", teacher="minilm")) == "distillation"
    assert resolve_loss(TrainConfig(encoder="colbert", teacher="minilm"), cached=True) == "cached-distillation"  # over the memory budget
    assert resolve_loss(TrainConfig(encoder="colbert", teacher="bm25", loss="distillation"), cached=True) == "distillation"  # named: kept
    with pytest.raises(ValueError, match="choose from contrastive, cached-contrastive, distillation, cached-distillation"):
        resolve_loss(TrainConfig(encoder="colbert", loss="mnrl"))
    for loss in ("distillation", "cached-distillation"):
        with pytest.raises(ValueError, match=f"loss {loss} needs --teacher"):
            resolve_loss(TrainConfig(encoder="colbert", loss=loss))


def test_recipes_parse_and_flags_override():
    import train as cli

    recipes = sorted((ROOT / "configs").glob("modernbert-*.toml"))
    assert {p.stem for p in recipes} >= {"modernbert-base-dpr", "modernbert-large-dpr", "modernbert-base-colbert", "modernbert-large-colbert"}
    for p in recipes:
        cfg, mining, _ = cli.parse(["--config", str(p)])
        assert cfg.batch_size == 16 and cfg.warmup_frac == 0.05 and cfg.train_data == "msmarco"
        assert cfg.max_examples == (1_250_000 if cfg.encoder == "dpr" else 810_000)
        resolve_loss(cfg)
    cfg, mining, _ = cli.parse(["--config", str(recipes[0]), "--lr", "3e-5", "--mine-margin", "none", "--mine-count", "7"])
    assert cfg.lr == 3e-5 and mining.margin is None and mining.count == 7


def test_minilm_recipes_parse_to_what_their_comments_claim():
    import train as cli

    recipes = {p.stem: p for p in (ROOT / "configs").glob("minilm-*.toml")}
    assert {"minilm-scifact-dpr", "minilm-nfcorpus-dpr", "minilm-scifact-colbert", "minilm-scifact-colbert-kd"} <= set(recipes)
    for p in recipes.values():
        cfg, _, _ = cli.parse(["--config", str(p)])
        assert cfg.model == "minilm"
        if cfg.encoder == "dpr":
            assert cfg.max_length == 128 and cfg.save_max_length == 256
        resolve_loss(cfg)
    # the ColBERT recipe is train.py's defaults with lr 5e-5 and --dtype auto, as its comment says
    assert cli.parse(["--config", str(recipes["minilm-scifact-colbert"])])[:2] == cli.parse(["--encoder", "colbert", "--lr", "5e-5", "--dtype", "auto"])[:2]
    # the distillation recipe is the command line its figure was measured with (there also --train-data scifact:train: the default split)
    kd = ["--encoder", "colbert", "--teacher", "bm25+minilm", "--teacher-norm", "minmax", "--teacher-temperature", "1", "--n-ways", "8",
          "--mine-count", "7", "--distill-in-batch", "1", "--lr", "5e-5", "--dtype", "auto"]
    assert cli.parse(["--config", str(recipes["minilm-scifact-colbert-kd"])])[:2] == cli.parse(kd)[:2]
    assert resolve_loss(cli.parse(kd)[0], cached=True) == "cached-distillation"
    cfg, mining, _ = cli.parse(["--config", str(recipes["minilm-nfcorpus-dpr"])])
    assert (cfg.train_data, cfg.max_pairs_per_query, cfg.guide, mining.method) == ("nfcorpus", 4, "minilm", "none")
    assert cfg.mask_false_negatives and cfg.dtype == "fp32"


def test_recipe_with_unknown_key_lists_valid_keys(tmp_path):
    import train as cli

    p = tmp_path / "bad.toml"
    p.write_text('learning_rate = 1e-4\n')
    with pytest.raises(ValueError, match="unknown keys \\['learning_rate'\\].*lr"):
        cli.parse(["--config", str(p)])


def test_jsonl_training_uses_the_given_negatives(tiny_bert, tmp_path):
    p = tmp_path / "pairs.jsonl"
    rows = [{"query": f"question {i} about cells", "positive": f"answer {i} cells divide", "negatives": [f"unrelated {i} a", f"unrelated {i} b"][: 1 + i % 2]} for i in range(8)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(model=str(tiny_bert), train_data=str(p), output=str(tmp_path / "out"), batch_size=4, max_steps=2, save_steps=100, max_length=16, device="cpu")
    rec = train(cfg, MiningConfig())
    assert rec["data"]["negatives_per_example"] == 1 and rec["data"]["examples_used"] == 8 and rec["steps"] == 2
