"""The numbers behind the figures (hand-made scores), then that the figures are drawn as PNG files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.leaderboard import paper_panels, paper_png
from benchmarks.plots import BarPanel, LengthCurve, LengthPanel, draw_differences, draw_paper, length_curves, sorted_differences
from benchmarks.results import Result
from benchmarks.significance import bootstrap_ci, paired_bootstrap_ci
from benchmarks.spec import CompareConfig

PNG = b"\x89PNG\r\n\x1a\n"


def test_sorted_differences_hand_made():
    system = {"q1": 0.5, "q2": 1.0, "q3": 0.0, "q4": 0.75, "q5": 0.25}
    baseline = {"q5": 0.25, "q4": 0.5, "q3": 0.25, "q2": 0.25, "q1": 0.5}  # another key order
    d = sorted_differences(system, baseline, names=("A", "BM25"), dataset="scifact", n=500, seed=3)
    assert d.diffs == (-0.25, 0.0, 0.0, 0.25, 0.75)
    assert d.qids == ("q3", "q1", "q5", "q4", "q2")  # ties (q1, q5) by qid
    assert d.mean == pytest.approx(0.15, abs=1e-12) and (d.system, d.baseline, d.dataset, d.metric) == ("A", "BM25", "scifact", "ndcg@10")
    qids = sorted(system)
    assert d.ci == paired_bootstrap_ci([system[q] for q in qids], [baseline[q] for q in qids], n=500, seed=3)
    assert d.ci[0] <= d.mean <= d.ci[1]
    assert sorted_differences(system, baseline, n=500, seed=3) == sorted_differences(system, baseline, n=500, seed=3)


def test_sorted_differences_need_the_same_queries():
    with pytest.raises(ValueError, match=r"'A' has 2 queries, baseline 'BM25' has 3, 2 shared"):
        sorted_differences({"q1": 0.1, "q2": 0.2}, {"q1": 0.1, "q2": 0.2, "q3": 0.3}, names=("A", "BM25"))


def test_length_curves_sort_lengths_and_bracket_each_mean():
    rng = np.random.default_rng(0)
    scores = {n: rng.random(20) for n in (256, 512, 1024, 8192)}  # (20,) per length
    cells = {("M (dpr)", f"passkey-{n}"): (float(scores[n].mean()), scores[n].tolist()) for n in (8192, 256, 1024, 512)}
    cells[("M (dpr)", "needle-512")] = (0.4, None)  # an old result: no per-query scores
    cells[("M (dpr)", "mldr")] = (0.3, [0.3, 0.3])  # not a generated suite
    cells[("BM25 (bm25)", "concat-2048")] = (0.8, [1.0, 0.6, 0.8])
    curves = length_curves(cells, n=300, seed=1)
    assert [(c.label, c.suite) for c in curves] == [("M (dpr)", "passkey"), ("M (dpr)", "needle"), ("BM25 (bm25)", "concat")]
    passkey, needle, concat = curves
    assert passkey.lengths == (256, 512, 1024, 8192)
    assert passkey.means == pytest.approx([scores[n].mean() for n in passkey.lengths], abs=1e-12)
    for n, mean, lo, hi in zip(passkey.lengths, passkey.means, passkey.lo, passkey.hi):
        assert lo <= mean <= hi
        assert (lo, hi) == bootstrap_ci(scores[n], n=300, seed=1)
    assert needle.lengths == (512,) and needle.means == (0.4,) and math.isnan(needle.lo[0]) and math.isnan(needle.hi[0])
    assert concat.lengths == (2048,) and concat.lo[0] <= 0.8 <= concat.hi[0]


def res(model, encoder, dataset, task, scores=None, value=0.5) -> Result:
    pq = {"qids": [f"q{i}" for i in range(len(scores))], "ndcg@10": list(scores)} if scores is not None else {}
    return Result(model, encoder, dataset, "test", task, {"ndcg@10": float(np.mean(scores)) if scores is not None else value}, 3, 10, f"k-{model}", per_query=pq)


RESULTS = [
    res("BM25", "bm25", "passkey-1024", "longdoc", [1.0, 1.0, 0.5]),
    res("BM25", "bm25", "passkey-256", "longdoc", [1.0, 1.0, 1.0]),
    res("BM25", "bm25", "mldr", "longdoc", value=0.3),
    res("MiniLM", "dpr", "needle-512", "longdoc", value=0.4),
    res("BM25", "bm25", "scifact", "beir", value=0.69),
]


def test_paper_panels_draw_length_curves_for_the_suites_and_bars_for_the_rest():
    panels = paper_panels(RESULTS, compare=CompareConfig(bootstrap=200))
    assert [type(p) for p in panels] == [LengthPanel, BarPanel, BarPanel]
    lengths, other, beir = panels
    assert [(c.label, c.suite, c.lengths) for c in lengths.curves] == [("BM25 (bm25)", "passkey", (256, 1024)), ("MiniLM (dpr)", "needle", (512,))]
    bm25 = lengths.curves[0]
    assert bm25.means == pytest.approx((1.0, 2.5 / 3)) and bm25.lo[0] == bm25.hi[0] == 1.0 and bm25.lo[1] <= bm25.means[1] <= bm25.hi[1]
    assert other.cols == ["mldr"] and other.cell == {("BM25", "bm25", "mldr"): 0.3}
    assert beir.title == "beir" and beir.cols == ["scifact"]


def test_figures_are_png_files(tmp_path):
    d = sorted_differences({"q1": 0.5, "q2": 1.0, "q3": 0.0}, {"q1": 0.5, "q2": 0.25, "q3": 0.25}, names=("A", "BM25"), dataset="d1", n=100)
    draw_differences(d, tmp_path / "per-query" / "A-vs-BM25__d1.png")
    assert (tmp_path / "per-query" / "A-vs-BM25__d1.png").read_bytes()[:8] == PNG
    curve = LengthCurve("M (dpr)", "passkey", (256, 512), (0.9, 0.5), (0.8, math.nan), (1.0, math.nan))
    draw_paper([LengthPanel("longdoc", [curve]), BarPanel("beir", ["scifact"], [("M", "dpr")], {("M", "dpr", "scifact"): 0.6})], tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    paper_png(RESULTS, tmp_path / "paper.png")
    assert (tmp_path / "paper.png").read_bytes()[:8] == PNG
