"""The default training recipe of issue 19: qrels ids in the train set, the false-negative mask in a
real batch, filter counts, the memory plan and peak RSS in train_result.json, and --resume identity."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import make_beir
from encoders.training.config import TrainConfig, resolve_loss
from encoders.training.contrastive import DOC_IDS, RELEVANT_IDS
from encoders.training.memory import OPTIMIZER_BYTES_PER_PARAM, RUNTIME_GB, model_shape, text_bytes
from encoders.training.mining import MiningConfig
from encoders.training.sampler import WarmupNoDuplicatesBatchSampler
from encoders.training.trainer import config_differences, run_identity, train
from encoders.training.trainset import build_train_set, cap_per_query

# q1 and q2 share d2: with both in a batch, d2 (q2's positive) is a false negative for q1 and the other way round.
CORPUS = [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate([
    "cats purr softly at home", "cats and kittens purr when happy", "kittens purr and play", "dogs bark loudly at night",
    "a dog barks at strangers", "fish swim in the ocean", "birds sing in the morning", "the stock market fell today",
    "bread recipes with yeast", "football scores of the weekend", "rain falls in spring", "stars burn hydrogen"])]
QUERIES = [{"_id": "q1", "text": "why do cats purr"}, {"_id": "q2", "text": "kittens purr"}, {"_id": "q3", "text": "dogs that bark"},
           {"_id": "q4", "text": "where do fish swim"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\nq2\td2\t1\nq2\td3\t1\nq3\td4\t1\nq3\td5\t1\nq4\td6\t1\n"
BM25 = MiningConfig(method="bm25", rank_start=1, rank_end=12, count=1, margin=None, max_ratio=None)


@pytest.fixture(scope="module")
def beir_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    make_beir(root / "toy", CORPUS, QUERIES, QRELS, split="train")
    return root


def cfg_for(root, model, out, **kw) -> TrainConfig:
    base = dict(model=str(model), data_dir=str(root), train_data="toy", output=str(out), batch_size=4, max_steps=2, save_steps=100,
                max_length=16, logging_steps=1, cache_dir=str(root / "cache"), device="cpu", seed=3)
    return TrainConfig(**{**base, **kw})


def test_train_set_carries_corpus_ids_and_the_querys_qrels(beir_root, tiny_bert, tmp_path):
    ts = build_train_set(cfg_for(beir_root, tiny_bert, tmp_path / "x"), BM25, "mnrl")
    rows = ts.dataset.to_list()
    assert len(rows) == 7
    by_anchor = {}
    for r in rows:
        by_anchor.setdefault(r["anchor"], []).append(r)
    # corpus positions: d1 -> 1, d2 -> 2 ...; q1's relevant docs are {d1, d2} on every q1 row
    q1 = by_anchor["why do cats purr"]
    assert sorted(r[DOC_IDS][0] for r in q1) == [1, 2] and all(r[RELEVANT_IDS] == [1, 2] for r in q1)
    assert all(len(r[DOC_IDS]) == 2 and r[DOC_IDS][1] not in r[RELEVANT_IDS] for r in rows)  # the mined negative is no positive
    assert ts.stats["false_negative_mask"]["ids"] == "qrels" and ts.stats["false_negative_mask"]["max_relevant"] == 2
    removed = ts.stats["mining"]["removed"]
    assert removed["qrels_positive"] > 0 and set(removed) >= {"rank_window", "above_margin", "above_ratio", "guide"}

    off = build_train_set(cfg_for(beir_root, tiny_bert, tmp_path / "y", mask_false_negatives=False), BM25, "mnrl")
    assert not {DOC_IDS, RELEVANT_IDS} & set(off.dataset.column_names)


def test_jsonl_ids_group_positives_by_query_text(tiny_bert, tmp_path):
    p = tmp_path / "pairs.jsonl"
    lines = [{"query": "q a", "positive": "p1", "negatives": ["n1"]}, {"query": "q a", "positive": "p2", "negatives": ["n2"]},
             {"query": "q b", "positive": "p3", "negatives": ["p1"]}]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = build_train_set(TrainConfig(model=str(tiny_bert), train_data=str(p), device="cpu"), MiningConfig(), "mnrl").dataset.to_list()
    ids = {r["positive"]: r for r in rows}
    p1, p2 = ids["p1"][DOC_IDS][0], ids["p2"][DOC_IDS][0]
    assert ids["p1"][RELEVANT_IDS] == ids["p2"][RELEVANT_IDS] == sorted([p1, p2])
    assert ids["p3"][DOC_IDS][1] == p1  # the same text is the same id: q b's negative is q a's positive


def test_cap_per_query_keeps_at_most_cap_per_key_seeded_and_in_order():
    keys = ["a", "a", "a", "b", "c", "c", "a"]
    keep = cap_per_query(keys, 2, seed=5)
    assert keep == sorted(keep) and keep == cap_per_query(keys, 2, seed=5)
    picked = [keys[i] for i in keep]
    assert picked.count("a") == 2 and picked.count("b") == 1 and picked.count("c") == 2
    assert cap_per_query(keys, 1, seed=5) != cap_per_query(keys, 1, seed=6)  # the seed picks
    assert {keys[i] for i in cap_per_query(keys, 1, seed=0)} == {"a", "b", "c"} and cap_per_query(keys, 9, seed=0) == list(range(7))


def test_max_pairs_per_query_caps_beir_pairs_and_records_it(beir_root, tiny_bert, tmp_path):
    ts = build_train_set(cfg_for(beir_root, tiny_bert, tmp_path / "x", max_pairs_per_query=1), BM25, "mnrl")
    anchors = [r["anchor"] for r in ts.dataset.to_list()]
    assert sorted(anchors) == sorted(q["text"] for q in QUERIES)  # one pair for each of the 4 queries (q1..q3 had 2)
    assert ts.stats["pairs_per_query_cap"] == {"cap": 1, "before": 7, "after": 4}
    q1 = next(r for r in ts.dataset.to_list() if r["anchor"] == "why do cats purr")
    assert q1[RELEVANT_IDS] == [1, 2]  # the mask still sees all of the query's qrels, not only the kept pair
    a, b = (run_identity(TrainConfig(max_pairs_per_query=n), MiningConfig(), "x") for n in (0, 1))
    assert config_differences(a, b) == ["max_pairs_per_query: 0 -> 1"]  # a weight-changing setting: --resume refuses it


def test_warmup_sampler_ignores_the_id_columns():
    import datasets

    rows = {"anchor": ["a", "b", "c", "d"], "positive": ["p", "q", "r", "s"], RELEVANT_IDS: [[1], [1], [1], [1]]}
    s = WarmupNoDuplicatesBatchSampler(datasets.Dataset.from_dict(rows), start=4, end=4, warmup_samples=0, seed=0, exclude=[RELEVANT_IDS])
    assert [len(b) for b in s] == [4]  # with the ids compared, equal id lists would split the batch


def test_default_recipe_records_mask_plan_filters_and_peak_rss(beir_root, tiny_bert, tmp_path):
    """A budget too small for the whole batch -> GradCache (cmnrl) with a mini-batch; the record says so."""
    from sentence_transformers import SentenceTransformer

    shape = model_shape(SentenceTransformer(str(tiny_bert), device="cpu"))
    per_text = text_bytes(layers=shape["layers"], hidden=shape["hidden"], heads=shape["heads"], seq=16)
    room_for_two = (RUNTIME_GB * 1e9 + OPTIMIZER_BYTES_PER_PARAM * shape["params"] + 2.5 * per_text) / 1e9
    cfg = cfg_for(beir_root, tiny_bert, tmp_path / "run", memory_budget_gb=room_for_two)
    rec = train(cfg, dataclasses.replace(BM25, max_ratio=0.95, margin=0.0))
    assert rec["loss"] == "cmnrl" and rec["false_negative_mask"]
    mem = rec["memory"]
    assert mem["cached"] and mem["mini_batch_size"] == 2 and mem["source"] == "--memory-budget-gb"
    assert rec["peak_rss_gb"] > 0.1 and rec["peak_rss_gb"] == mem["peak_rss_gb"]
    assert set(rec["data"]["mining"]["removed"]) >= {"qrels_positive", "above_ratio", "above_margin", "guide"}
    saved = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert saved["peak_rss_gb"] == rec["peak_rss_gb"]

    explicit = train(dataclasses.replace(cfg, output=str(tmp_path / "run2"), mini_batch_size=4), BM25)
    assert explicit["loss"] == "mnrl" and explicit["memory"]["source"] == "--mini-batch-size" and not explicit["memory"]["cached"]


def test_explicit_uncached_loss_over_budget_warns_and_records_the_whole_batch(beir_root, tiny_bert, tmp_path, caplog):
    """--loss mnrl ignores GradCache: the record must not claim the budget's mini-batch (it once said cached, 13)."""
    cfg = cfg_for(beir_root, tiny_bert, tmp_path / "run", memory_budget_gb=0.001, loss="mnrl")
    with caplog.at_level("WARNING", logger="encoders.training.trainer"):
        rec = train(cfg, BM25)
    mem = rec["memory"]
    assert rec["loss"] == "mnrl"
    assert (mem["cached"], mem["mini_batch_size"], mem["source"]) == (False, cfg.batch_size, "--loss mnrl")
    assert any("--loss mnrl has no GradCache" in r.getMessage() for r in caplog.records)


def test_every_batch_masks_the_other_querys_positive(tmp_path, tiny_bert):
    """Two queries, both relevant to d0..d3: a batch of 2 holds one row of each (no duplicate anchors),
    so each query's softmax leaves out the other's positive: 2 masked logits per step."""
    corpus = [{"_id": f"d{i}", "title": "", "text": f"shared topic passage {i}"} for i in range(4)] + \
             [{"_id": f"x{i}", "title": "", "text": f"unrelated text {i}"} for i in range(4)]
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\td{i}\t1\n" for q in ("q1", "q2") for i in range(4))
    make_beir(tmp_path / "shared", corpus, [{"_id": "q1", "text": "shared topic"}, {"_id": "q2", "text": "topic passages"}], qrels, split="train")
    cfg = cfg_for(tmp_path, tiny_bert, tmp_path / "out", train_data="shared", batch_size=2, max_steps=3)
    rec = train(cfg, MiningConfig(method="none"))
    assert rec["in_batch_negatives_masked"] == 6
    off = train(dataclasses.replace(cfg, output=str(tmp_path / "off"), mask_false_negatives=False), MiningConfig(method="none"))
    assert off["in_batch_negatives_masked"] == 0 and off["loss_log"][0] > rec["loss_log"][0]


def test_guide_filters_at_mining_time_and_in_the_dpr_loss(beir_root, tiny_bert, tmp_path):
    cfg = cfg_for(beir_root, tiny_bert, tmp_path / "g", guide=str(tiny_bert), cache_dir=str(tmp_path / "cache"))
    rec = train(cfg, BM25)
    assert rec["guide"] == str(tiny_bert) and rec["data"]["mining"]["guide"] == str(tiny_bert)
    assert rec["data"]["mining"]["removed"]["guide"] > 0  # a random guide disagrees with BM25 on some candidates
    assert len(list((tmp_path / "cache" / "mining").glob("guide-*.json"))) == 1
    assert rec["in_batch_negatives_masked"] > 0  # the guide's in-batch mask (a random guide ranks some in-batch docs above the positive)


def test_resume_compares_the_new_settings():
    cfg, mining = TrainConfig(), MiningConfig()
    a = {**run_identity(cfg, mining, "x"), "batching": {"loss": "cmnrl", "mini_batch_size": 20}}
    b = {**run_identity(dataclasses.replace(cfg, memory_budget_gb=8.0, mask_false_negatives=False, guide="minilm"),
                        dataclasses.replace(mining, max_ratio=None), "x"), "batching": {"loss": "mnrl", "mini_batch_size": 32}}
    diffs = config_differences(a, b)
    assert [d.split(":")[0] for d in diffs] == ["batching", "guide", "mask_false_negatives", "memory_budget_gb", "mining.max_ratio"]


def test_minilm_defaults_are_cached_within_the_budget(minilm_path):
    """The issue's default run (MiniLM, batch 32 x (query + positive + 4 negatives) x 256 tokens) no longer goes through at once."""
    from types import SimpleNamespace

    from sentence_transformers import SentenceTransformer

    from encoders.training.trainer import memory_plan

    model = SentenceTransformer(str(minilm_path), device="cpu")
    cols = SimpleNamespace(column_names=["anchor", "positive", *[f"negative_{j}" for j in range(1, 5)], DOC_IDS, RELEVANT_IDS])
    plan = memory_plan(model, TrainConfig(), cols, "mnrl")
    assert plan.cached and plan.mini_batch_size == 15 and plan.whole_batch_gb > 20
    assert plan.fixed_gb + plan.mini_batch_size * plan.text_gb <= TrainConfig().memory_budget_gb
    assert resolve_loss(TrainConfig(), cached=plan.cached) == "cmnrl"
    assert not memory_plan(model, TrainConfig(mini_batch_size=32), cols, "mnrl").cached  # explicit wins


def test_resolve_loss_follows_the_memory_plan():
    assert resolve_loss(TrainConfig(), cached=True) == "cmnrl"
    assert resolve_loss(TrainConfig(encoder="colbert"), cached=True) == "cached-contrastive"
    assert resolve_loss(TrainConfig(loss="mnrl"), cached=True) == "mnrl"  # an explicit loss wins
    assert resolve_loss(TrainConfig(mini_batch_size=8)) == "cmnrl"
