"""benchmarks/speed/throughput.py: batching, FLOP counting, and one tiny end-to-end run (timing + memory child)."""

import json

import pytest

import benchmarks.speed.throughput as tp
from benchmarks.speed.throughput import doc_lengths, main, make_batches, useful_flops
from encoders.modernbert import ModernBertConfig


def _check_cover_and_budget(batches, lengths, budget):
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every doc exactly once
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= budget


def test_make_batches_sorted_longest_first_within_budget():
    lengths = [5, 40, 12, 33, 7, 40, 1]
    batches = make_batches(lengths, budget=80, order="sorted")
    _check_cover_and_budget(batches, lengths, 80)
    assert batches == [[1, 5], [3, 2], [4, 0, 6]]  # 40, 40 | 33, 12 | 7, 5, 1


def test_make_batches_random_keeps_document_order_and_budget():
    lengths = [5, 40, 12, 33, 7, 40, 1]
    batches = make_batches(lengths, budget=80, order="random")
    _check_cover_and_budget(batches, lengths, 80)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    assert batches == [[0, 1], [2, 3], [4, 5], [6]]  # a later long doc raises the batch's padded length
    with pytest.raises(ValueError, match="order"):
        make_batches(lengths, 80, order="shuffled")


def test_single_doc_longer_than_budget_is_its_own_batch():
    assert make_batches([100, 3], budget=50) == [[0], [1]]


def test_useful_flops_short_sequence_local_equals_global():
    cfg = ModernBertConfig.tiny()
    H, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2 * (4 * H * H + 3 * H * I) * L
    # 10 tokens: every key is inside the 129-token window, so every layer sees 10 x 10 pairs
    assert useful_flops(cfg, [10]) == per_token * 10 + 4 * H * L * 100
    # 300 tokens: local layers see fewer pairs than global ones
    assert useful_flops(cfg, [300]) < per_token * 300 + 4 * H * L * 300 * 300


def test_doc_lengths_sets():
    assert doc_lengths("fixed512", 3, 0) == [512] * 3
    var = doc_lengths("var256", 200, 0)
    assert min(var) >= 16 and max(var) <= 512 and 200 < sum(var) / len(var) < 310
    assert doc_lengths("var256", 5, 1) == doc_lengths("var256", 5, 1)


def test_tiny_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "rows.json"
    main(["--size", "tiny", "--docs", "6", "--sets", "var256", "--dtype", "fp32", "--token-budget", "1024",
          "--order", "random", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["ours", "hf"]  # two timed passes each (repeats=2), interleaved
    for r in rows:
        assert r["tokens"] == sum(doc_lengths("var256", 6, 0)) and r["padded_tokens"] >= r["tokens"]
        assert r["tokens_per_s"] > 0 and r["peak_mem_mib"] > 0  # memory measured in a child process
    assert rows[0]["backend"] == "sdpa_blocked"
    assert "| var256 | fp32 | 6 |" in capsys.readouterr().out


def test_time_models_interleaves_per_batch_and_sums_each_batch_min(monkeypatch):
    calls = []
    fake = {  # (model, batch) -> seconds of each successive pass
        ("ours", "b0"): [5.0, 1.0], ("hf", "b0"): [2.0, 3.0],
        ("ours", "b1"): [4.0, 6.0], ("hf", "b1"): [9.0, 7.0],
    }

    def time_batch(model, batch, device):
        calls.append((model, batch))
        return fake[model, batch][sum(c == (model, batch) for c in calls) - 1], 0

    monkeypatch.setattr(tp, "time_batch", time_batch)
    out = tp.time_models({"ours": "ours", "hf": "hf"}, ["ours", "hf"], ["b0", "b1"], "cpu", repeats=2)
    assert calls == [("ours", "b0"), ("hf", "b0"), ("ours", "b0"), ("hf", "b0"),
                     ("ours", "b1"), ("hf", "b1"), ("ours", "b1"), ("hf", "b1")]
    assert out == {"ours": (1.0 + 4.0, 0), "hf": (2.0 + 7.0, 0)}  # fastest pass per batch, summed


def test_flags_from_the_config_fields():
    from benchmarks.speed.throughput import parse_args

    assert parse_args([]).memory is True  # a bool that defaults to True gets --memory / --no-memory
    cfg = parse_args(["--no-memory", "--docs", "3", "--token-budget", "512", "--sets", "var256"])
    assert (cfg.memory, cfg.docs, cfg.token_budget, cfg.sets) == (False, 3, 512, "var256")
    with pytest.raises(SystemExit):
        parse_args(["--docs", "three"])
