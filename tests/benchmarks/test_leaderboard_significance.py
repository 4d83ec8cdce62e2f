"""Significance in the tables: markers exactly where the corrected p <= alpha, CIs, legends, errors.

Hand-made results with per-query scores: a baseline (BM25) and two systems on two datasets of 30
queries. "A" is far better on d1 and far worse on d2; "B" is a little better on d1, with a raw
paired t p-value of ~0.045 that Holm's correction over the table's 4 comparisons lifts above 0.05.
"""

from __future__ import annotations

import csv
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import evaluate
from benchmarks.leaderboard import per_query_differences, write_leaderboard
from benchmarks.marks import find_baseline, marks_for
from benchmarks.render.csvfile import paper_csv, to_csv
from benchmarks.render.page import paper_html
from benchmarks.render.markdown import paper_markdown, to_markdown
from benchmarks.results import Result, load_results, save_result
from benchmarks.significance import TESTS, bootstrap_ci, holm
from benchmarks.spec import CompareConfig, Correction, StatTest, make_spec
from tests.conftest import ROOT

Q = 30
QIDS = [f"q{i:02d}" for i in range(Q)]
BASE = np.array([round(0.1 * (i % 7) + 0.05 * (i % 3), 2) for i in range(Q)])  # (Q,) in [0, 0.7]
SMALL = np.array([0.025 + 0.06 * (1 if i % 2 else -1) * (1 + i % 3) / 2 for i in range(Q)])  # (Q,) mean 0.025


def res(model, dataset, scores, *, encoder="dpr", task="beir", spec=None, per_query=True, created="2026-01-01T00:00:00+0000", qids=QIDS) -> Result:
    scores = [float(x) for x in scores]
    return Result(
        model=model,
        encoder=encoder,
        dataset=dataset,
        split="test",
        task=task,
        metrics={"ndcg@10": float(np.mean(scores)), "recall@100": 0.9},
        num_queries=len(scores),
        num_docs=100,
        config_key=f"key-{model}-{encoder}",
        provenance={"model_spec": spec or model.lower()},
        per_query={"qids": list(qids), "ndcg@10": scores} if per_query else {},
        created_at=created,
    )


SCORES = {  # (model, dataset) -> (Q,) per-query nDCG@10
    ("BM25", "d1"): BASE,
    ("BM25", "d2"): BASE,
    ("A", "d1"): BASE + 0.25 + 0.05 * (np.arange(Q) % 2),  # 0.275 better on average
    ("A", "d2"): np.clip(BASE - 0.2, 0, 1),
    ("B", "d1"): np.clip(BASE + SMALL, 0, 1),
    ("B", "d2"): BASE,
}


def results() -> list[Result]:
    return [res(m, d, s, encoder="bm25" if m == "BM25" else "dpr", spec="bm25" if m == "BM25" else None) for (m, d), s in SCORES.items()]


def pivot_cells(md: str, model: str) -> list[str]:
    """The cells of ``model``'s row in the first table of ``md`` (the pivot)."""
    line = next(line for line in md.splitlines() if line.startswith(f"| {model} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def expected_adjusted() -> dict[tuple[str, str], float]:
    """Holm over the 4 comparisons, by scipy's paired t-test: the reference the markers must follow."""
    keys = [("A", "d1"), ("B", "d1"), ("A", "d2"), ("B", "d2")]
    raw = [scipy.stats.ttest_rel(SCORES[k], SCORES[("BM25", k[1])]).pvalue if not np.array_equal(SCORES[k], SCORES[("BM25", k[1])]) else 1.0 for k in keys]
    return dict(zip(keys, holm(raw)))


def test_the_case_is_significant_before_holm_and_not_after():
    p_b = scipy.stats.ttest_rel(SCORES[("B", "d1")], BASE).pvalue
    assert 0.025 < p_b < 0.05  # uncorrected: significant
    assert expected_adjusted()[("B", "d1")] > 0.05  # Holm over the table: not


def test_markers_exactly_where_the_corrected_p_is_below_alpha():
    md = to_markdown(results(), compare=CompareConfig(baseline="BM25"))
    adjusted = expected_adjusted()
    for model in ("A", "B"):
        cells = dict(zip(["model", "encoder", "d1", "d2", "mean"], pivot_cells(md, model)))
        for ds in ("d1", "d2"):
            marked = "▲" in cells[ds] or "▼" in cells[ds]
            assert marked == (adjusted[(model, ds)] <= 0.05), (model, ds, cells[ds], adjusted[(model, ds)])
    a = dict(zip(["model", "encoder", "d1", "d2", "mean"], pivot_cells(md, "A")))
    assert a["d1"].startswith(f"{np.mean(SCORES['A', 'd1']):.4f}▲ ± ") and a["d2"].startswith(f"{np.mean(SCORES['A', 'd2']):.4f}▼ ± ")  # direction: above on d1, below on d2
    assert "▲" not in "".join(pivot_cells(md, "BM25")) and "▼" not in "".join(pivot_cells(md, "BM25"))
    # without the correction B's d1 is marked
    md_none = to_markdown(results(), compare=CompareConfig(baseline="BM25", correction="none"))
    assert "▲" in pivot_cells(md_none, "B")[2]
    assert "Holm correction over the family of the 4 comparisons in this table" in md
    assert "no correction over the family of the 4 comparisons" in md_none


def test_marks_carry_the_corrected_p_values():
    marks = marks_for(results(), CompareConfig(baseline="bm25"), "ndcg@10")
    assert marks.baseline == ("BM25", "bm25")
    for (model, _, ds), c in marks.comparisons.items():
        assert c.p_adjusted == pytest.approx(expected_adjusted()[(model, ds)], abs=1e-12)
        assert c.n_queries == Q
    assert marks.queries == {"d1": Q, "d2": Q}


def test_cis_equal_the_seeded_bootstrap_and_are_in_the_csv():
    cfg = CompareConfig(baseline="BM25", bootstrap=500, stats_seed=7)
    everything = list(csv.DictReader(to_csv(results(), cfg).splitlines()))
    rows = [r for r in everything if not r["dataset"].startswith("mean(")]
    means = [r for r in everything if r["dataset"] == "mean(d1+d2)"]
    assert len(rows) == 6 and len(means) == 3  # a row per cell, then per row the mean over d1 and d2 with its rank interval and tier
    assert all(m["ndcg@10_rank_lo"] <= m["ndcg@10_rank"] <= m["ndcg@10_rank_hi"] and m["ndcg@10_tier"] for m in means)
    for row in rows:
        scores = SCORES[(row["model"], row["dataset"])]
        lo, hi = bootstrap_ci(scores, n=500, seed=7)
        assert (row["ndcg@10_ci_lo"], row["ndcg@10_ci_hi"]) == (f"{lo:.5f}", f"{hi:.5f}")
        assert float(row["ndcg@10_ci_lo"]) <= float(row["ndcg@10"]) <= float(row["ndcg@10_ci_hi"])
        assert (row["baseline"], row["test"], row["correction"], row["alpha"], row["bootstrap"], row["stats_seed"], row["comparisons"]) == ("BM25", "t", "holm", "0.05", "500", "7", "4")
    by = {(r["model"], r["dataset"]): r for r in rows}
    assert by[("BM25", "d1")]["significant"] == "" and by[("A", "d1")]["significant"] == "true" and by[("B", "d1")]["significant"] == "false"
    assert float(by[("A", "d1")]["ndcg@10_diff"]) == pytest.approx(0.275)
    assert 0.25 <= float(by[("A", "d1")]["diff_ci_lo"]) < 0.275 < float(by[("A", "d1")]["diff_ci_hi"]) <= 0.3  # d is 0.25 or 0.3
    assert to_csv(results(), cfg) != to_csv(results(), CompareConfig(baseline="BM25", bootstrap=500, stats_seed=8))


def test_legend_names_test_correction_alpha_queries_resamples_and_seed():
    md = to_markdown(results(), compare=CompareConfig(baseline="BM25", test="randomization", permutations=2000, bootstrap=300, stats_seed=3, alpha=0.01))
    assert "Baseline: BM25 (bm25)" in md
    assert "Fisher randomization test (2000 sign-flip permutations, seed 3)" in md and "alpha 0.01" in md
    assert "(300 resamples, seed 3)" in md and "Queries compared: d1 30, d2 30." in md
    assert "## ndcg@10 against BM25" in md and f"| A | dpr | d1 | 30 | {np.mean(SCORES['A', 'd1']):.4f} | {np.mean(BASE):.4f} | +0.2750 | [" in md  # the differences table


def test_same_run_renders_byte_identically_twice(tmp_path):
    for r in results():
        save_result(r, tmp_path)
    argv = ["--leaderboard", str(tmp_path), "--layout", "paper", "--baseline", "BM25", "--test", "randomization", "--permutations", "500", "--bootstrap", "200"]
    names = ["leaderboard.md", "leaderboard.csv", "paper.md", "paper.csv", "paper.html", "paper.png", "per-query/A-vs-BM25__d1.png"]
    assert evaluate.main(argv) == 0
    first = {n: (tmp_path / n).read_bytes() for n in names}
    assert evaluate.main(argv) == 0
    assert {n: (tmp_path / n).read_bytes() for n in names} == first
    assert sorted(p.name for p in (tmp_path / "per-query").iterdir()) == ["A-vs-BM25__d1.png", "A-vs-BM25__d2.png", "B-vs-BM25__d1.png", "B-vs-BM25__d2.png"]


def test_different_query_sets_are_an_error_naming_both_results():
    rs = results() + [res("C", "d1", BASE[:20], qids=QIDS[:20])]
    with pytest.raises(ValueError, match=r"d1: C \(dpr, result C__dpr__d1__test__key-C-dpr\.json\) has 20 queries, baseline BM25 \(bm25, result BM25__bm25__d1__test__key-BM25-bm2\.json\) has 30, 20 shared"):
        to_markdown(rs, compare=CompareConfig(baseline="BM25"))


def test_malformed_per_query_names_the_file_and_field():
    bad = res("C", "d1", BASE)
    bad.per_query["ndcg@10"] = bad.per_query["ndcg@10"][:-1]
    with pytest.raises(ValueError, match=r"result C__dpr__d1__test__key-C-dpr\.json .*field per_query\['ndcg@10'\]: 29 values for 30 qids"):
        to_markdown(results() + [bad], compare=CompareConfig(baseline="BM25"))


def test_unknown_baseline_says_did_you_mean_and_lists_the_rows(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--baseline 'BM52' is no row of the leaderboard; did you mean 'BM25'\? \(valid: BM25, A, B\)"):
        find_baseline(results(), "BM52")
    for r in results():
        save_result(r, tmp_path)
    assert evaluate.main(["--leaderboard", str(tmp_path), "--baseline", "bm52"]) == 2
    assert "did you mean 'BM25'?" in capsys.readouterr().err


def test_baseline_matches_label_model_or_model_spec_case_insensitively():
    rs = results()
    assert {r.dataset for r in find_baseline(rs, "bm25")} == {"d1", "d2"}
    assert [r.model for r in find_baseline(rs, "BM25 (bm25)")] == ["BM25", "BM25"]
    spec = [res("all-MiniLM-L6-v2", "d1", BASE, spec="minilm")]
    assert [r.model for r in find_baseline(spec, "MiniLM")] == ["all-MiniLM-L6-v2"]
    two = spec + [res("all-MiniLM-L6-v2 [maxp]", "d1", BASE, spec="minilm")]
    with pytest.raises(ValueError, match="names several rows: all-MiniLM-L6-v2 \\(dpr\\), all-MiniLM-L6-v2 \\[maxp\\] \\(dpr\\)"):
        find_baseline(two, "minilm")
    assert [r.model for r in find_baseline(two, "all-minilm-l6-v2")] == ["all-MiniLM-L6-v2"]  # the exact label wins


def test_results_without_per_query_get_no_marker_and_a_footnote():
    rs = [r for r in results() if r.model != "B"] + [res("B", "d1", BASE + SMALL, per_query=False)]
    md = to_markdown(rs, compare=CompareConfig(baseline="BM25", correction="none"))
    b = pivot_cells(md, "B")
    assert b[2] == f"{np.mean(BASE + SMALL):.4f}"  # no marker, no ±
    assert "No per-query scores in the result (written before they were recorded), so no CI or marker: B (dpr) on d1." in md
    old = [res(m, d, s, per_query=False) for (m, d), s in SCORES.items() if d == "d1"]
    assert "No result in this table has per-query scores" in to_markdown(old, compare=CompareConfig(baseline="BM25"))


def test_no_baseline_leaves_every_table_unchanged():
    rs = results()
    for none in (None, CompareConfig()):
        assert to_markdown(rs, compare=none) == to_markdown(rs)
        assert to_csv(rs, none) == to_csv(rs) and paper_csv(rs, compare=none) == paper_csv(rs)
        assert paper_markdown(rs, compare=none) == paper_markdown(rs) and paper_html(rs, compare=none) == paper_html(rs)
    assert "±" not in to_markdown(rs) and "class='mark'" not in paper_html(rs)  # ranks need no baseline; marks and ± do


def test_example_leaderboard_rerenders_byte_identically(tmp_path):
    """Re-rendering docs/example-leaderboard as its NOTES.md says (``--baseline BM25``) writes the committed tables byte for byte
    (paper.png and the per-query PNGs are figures, redrawn); without a baseline the same results render with no marker and no CI."""
    src = ROOT / "docs" / "example-leaderboard"
    for p in src.glob("*.json"):
        shutil.copy(p, tmp_path / p.name)
    compare = CompareConfig(baseline="BM25")
    write_leaderboard(tmp_path, compare)
    assert (tmp_path / "leaderboard.md").read_bytes() == (src / "leaderboard.md").read_bytes()
    assert (tmp_path / "leaderboard.csv").read_bytes() == (src / "leaderboard.csv").read_bytes()
    rs = load_results(tmp_path)
    assert ("# Leaderboard (ModernBERT Table 1 layout)\n\n" + paper_markdown(rs, compare=compare)).encode() == (src / "paper.md").read_bytes()
    assert paper_csv(rs, compare=compare).encode() == (src / "paper.csv").read_bytes()
    assert paper_html(rs, compare=compare).encode() == (src / "paper.html").read_bytes()
    assert "▲" not in to_markdown(rs) and "±" not in paper_markdown(rs)
    for name in ("leaderboard.tex", "leaderboard.html", "paper.tex"):  # the LaTeX and page files are the registered renderings
        assert (src / name).is_file()


def test_paper_layout_marks_breakdowns_and_single_dataset_table1_cells():
    rs = [r for r in results() if r.dataset == "d1"]  # BEIR-DPR then comes from d1 alone
    cfg = CompareConfig(baseline="BM25")
    md = paper_markdown(rs, compare=cfg)
    lo, hi = bootstrap_ci(SCORES["A", "d1"], n=1000, seed=0)
    a_text = f"{100 * np.mean(SCORES['A', 'd1']):.1f}▲ ± {100 * (hi - lo) / 2:.1f}"
    t1 = next(line for line in md.splitlines() if line.startswith("| A |"))
    assert t1.startswith(f"| A | {a_text} |")  # Table 1, x100, the d1 marker
    assert "## beir (ndcg@10 x 100)" in md and f"| A | dpr | {a_text} | {100 * np.mean(SCORES['A', 'd1']):.1f} |" in md
    assert "mean over queries, x 100 (1000 resamples, seed 0)" in md
    rows = list(csv.DictReader(paper_csv(rs, compare=cfg).splitlines()))
    a = next(r for r in rows if r["model"] == "A")
    assert a["BEIR-DPR_vs_baseline"] == "higher" and a["BEIR-DPR_ci_lo"] == f"{lo:.5f}" and a["baseline"] == "BM25" and a["test"] == "t"
    # The beir table's family is now A and B on d1: Holm's last step multiplies B's p (~0.045) by 1, Bonferroni by 2.
    assert next(r for r in rows if r["model"] == "B")["BEIR-DPR_vs_baseline"] == "higher"
    bonf = list(csv.DictReader(paper_csv(rs, compare=CompareConfig(baseline="BM25", correction="bonferroni")).splitlines()))
    assert next(r for r in bonf if r["model"] == "B")["BEIR-DPR_vs_baseline"] == "n.s."
    page = paper_html(rs, compare=cfg)
    assert f"{100 * np.mean(SCORES['A', 'd1']):.1f}<sup class='mark'" in page and "title='95% CI [" in page and "paired t-test" in page
    assert "<ul class='notes'><li>BEIR-DPR: mean over d1" in page and "<li>Baseline: BM25 (bm25)." in page
    both = paper_markdown(results(), compare=cfg)  # a mean over d1 and d2: no marker in Table 1
    assert next(line for line in both.splitlines() if line.startswith("| A |")).startswith(f"| A | {50 * (np.mean(SCORES['A', 'd1']) + np.mean(SCORES['A', 'd2'])):.1f} |")


def test_per_query_differences_are_sorted_per_pair():
    pairs = dict(per_query_differences(results(), CompareConfig(baseline="BM25", bootstrap=200)))
    assert sorted(pairs) == ["A-vs-BM25__d1.png", "A-vs-BM25__d2.png", "B-vs-BM25__d1.png", "B-vs-BM25__d2.png"]
    d = pairs["B-vs-BM25__d1.png"]
    assert list(d.diffs) == sorted(d.diffs) and len(d.diffs) == Q
    assert d.mean == pytest.approx(float(np.mean(np.clip(BASE + SMALL, 0, 1) - BASE)), abs=1e-12)
    assert d.ci[0] <= d.mean <= d.ci[1]


def test_compare_flags_reach_the_spec_and_are_validated():
    args = evaluate.parser().parse_args(["--baseline", "BM25", "--test", "wilcoxon", "--correction", "bonferroni", "--alpha", "0.01", "--permutations", "99", "--bootstrap", "50", "--stats-seed", "4"])
    assert evaluate.spec_from_args(args).compare == CompareConfig("BM25", "wilcoxon", "bonferroni", 0.01, 99, 50, 4)
    assert typing.get_args(StatTest) == tuple(TESTS) and typing.get_args(Correction) == ("holm", "bonferroni", "none")
    with pytest.raises(ValueError, match=r"--alpha must lie in \(0, 1\)"):
        make_spec(alpha=1.5)
    with pytest.raises(ValueError, match="did you mean 'wilcoxon'"):
        make_spec(test="wilcox")
    assert make_spec().settings("dpr") == make_spec(baseline="BM25", test="wilcoxon").settings("dpr")  # no score changes: no key changes


def test_per_query_plots_written_next_to_the_leaderboard(tmp_path):
    for r in results():
        save_result(r, tmp_path)
    assert evaluate.main(["--leaderboard", str(tmp_path), "--baseline", "BM25", "--bootstrap", "100"]) == 0
    png = Path(tmp_path / "per-query" / "B-vs-BM25__d1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "▲" in (tmp_path / "leaderboard.md").read_text()
