"""benchmarks/speed/beir_parity.py: how rounds of the two pipelines are summarised (the runs themselves are
minutes of encoding, so the script is a benchmark, not a test)."""

import pytest

from benchmarks.speed.beir_parity import summarise


def test_fastest_run_counts_and_per_round_ratios():
    runs = {
        "peer": [{"ndcg@10": 0.645, "wall_s": 300.0}, {"ndcg@10": 0.645, "wall_s": 250.0}],
        "ours_fp32": [{"ndcg@10": 0.645, "wall_s": 200.0}, {"ndcg@10": 0.645, "wall_s": 240.0}],
    }
    rows = summarise(runs)
    assert rows["peer"]["wall_s"] == 250.0 and rows["ours_fp32"]["wall_s"] == 200.0
    assert rows["ours_fp32"]["speedup_vs_peer"] == pytest.approx(1.25)  # fastest vs fastest
    assert rows["ours_fp32"]["speedup_per_round"] == pytest.approx([1.5, 250 / 240])
    assert "speedup_vs_peer" not in rows["peer"]


def test_scores_must_agree_between_rounds():
    runs = {"peer": [{"ndcg@10": 0.645, "wall_s": 1.0}, {"ndcg@10": 0.644, "wall_s": 1.0}]}
    with pytest.raises(ValueError, match="peer: nDCG@10 differs"):
        summarise(runs)
