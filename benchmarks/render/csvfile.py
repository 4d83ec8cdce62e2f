"""CSV: one row per table cell (the default layout) and Table 1 (the paper layout), with the marks' numbers as columns."""

from __future__ import annotations

import csv
import io

from benchmarks.cells import choose
from benchmarks.marks import Marks, identity, marks_for, table1_key, task_marks
from benchmarks.results import Result
from benchmarks.spec import CompareConfig
from benchmarks.standings import table1_ranks, table_ranks
from benchmarks.table import KEY_COLUMNS, PAPER_COLUMNS, Cell, metric_columns, paper_cells, paper_table

def to_csv(results: list[Result], compare: CompareConfig | None = None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> str:
    """One row per table cell (the result :func:`benchmarks.cells.choose` shows; superseded results are left out),
    ``model`` being the row label; with a baseline, ``metric``'s CI, the comparison and the legend's settings as extra columns."""
    marks = marks_for(results, compare, metric, everything)
    table = choose(results, everything)
    shown = [((row, col), table.cells[(row, col)]) for row in table.rows for col in table.columns if (row, col) in table.cells]
    cols = metric_columns([r for _, r in shown])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = [f"{metric}_ci_lo", f"{metric}_ci_hi", "baseline", f"{metric}_diff", "diff_ci_lo", "diff_ci_hi", "p", "p_adjusted", "significant", "test", "correction", "alpha", "comparisons", "bootstrap", "stats_seed"]
    ranks = table_ranks(results, compare, metric, everything)
    rank_cols = [f"{metric}_rank", f"{metric}_rank_lo", f"{metric}_rank_hi", f"{metric}_tier"] if ranks.any() else []
    w.writerow(KEY_COLUMNS + cols + ["num_queries", "num_docs", "total_s"] + rank_cols + (extra if marks else []))
    for (row, col), r in shown:
        dataset = col.dataset + (" (in-domain)" if col.in_domain else "")
        line = [row.label, r.encoder, dataset, col.split] + [f"{r.metrics[c]:.5f}" if c in r.metrics else "" for c in cols] + [r.num_queries, r.num_docs, f"{r.timings.get('total_s', 0):.1f}"]
        if rank_cols:
            line += _rank_cells(ranks.columns.get(col.label, {}).get((row.label, row.encoder)))
        if marks:
            line += _csv_marks(marks, marks.sources.get(identity(r)))
        w.writerow(line)
    for split, mean in ranks.means.items():  # one row per mean over datasets: "mean(nfcorpus+scifact)"
        for (label, encoder), st in mean.standings.items():
            line = [label, encoder, f"mean({'+'.join(mean.columns)})", split] + [f"{st.mean:.5f}" if c == metric else "" for c in cols] + ["", "", ""]
            w.writerow(line + _rank_cells(st) + ([""] * len(extra) if marks else []))
    return buf.getvalue()


def _rank_cells(st) -> list:
    return [st.rank, *st.interval, st.tier] if st is not None else ["", "", "", ""]


def _csv_marks(marks: Marks, key: Cell | None) -> list:
    c, cfg = marks.comparisons.get(key), marks.config
    ci = [f"{x:.5f}" for x in marks.ci[key]] if key in marks.ci else ["", ""]
    base = marks.baseline[0] if marks.baseline else ""
    comp = [f"{c.diff:.5f}", f"{c.diff_ci[0]:.5f}", f"{c.diff_ci[1]:.5f}", f"{c.p:.6g}", f"{c.p_adjusted:.6g}", str(c.significant).lower()] if c else [""] * 6
    return ci + [base] + comp + [cfg.test, cfg.correction, f"{cfg.alpha:g}", len(marks.comparisons), cfg.bootstrap, cfg.stats_seed]


def paper_csv(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None) -> str:
    """Table 1 as CSV; with a baseline, per column its CI bounds and how it compares (higher / lower / n.s.),
    for cells from one dataset, then the legend's settings."""
    marks = task_marks(results, compare, metric)
    models, values, _, _ = paper_table(results, metric)
    _, cells, _ = paper_cells(results, metric)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = [f"{c}_{x}" for c in PAPER_COLUMNS for x in ("ci_lo", "ci_hi", "vs_baseline")] + ["baseline", "test", "correction", "alpha", "bootstrap", "stats_seed"]
    t1 = table1_ranks(results, compare, metric)
    rank_cols = [f"{c}_{x}" for c in PAPER_COLUMNS if c in t1 for x in ("rank", "rank_lo", "rank_hi", "tier")]
    w.writerow(["model"] + PAPER_COLUMNS + rank_cols + (extra if marks else []))
    for m, row in zip(models, values):
        out = [m] + ["" if v is None else f"{v:.5f}" for v in row]
        for c in PAPER_COLUMNS:
            if c in t1:
                out += _rank_cells(t1[c].standings.get((m, "")))
        if marks:
            for c in PAPER_COLUMNS:
                mk, key = table1_key(cells.get((m, c), {}), marks)
                ci = [f"{x:.5f}" for x in mk.ci[key]] if mk and key in mk.ci else ["", ""]
                comp = mk.comparisons.get(key) if mk else None
                out += ci + ["" if comp is None else "n.s." if not comp.significant else "higher" if comp.diff > 0 else "lower" if comp.diff < 0 else "differs"]
            out += [next((mk.baseline[0] for mk in marks.values() if mk.baseline), compare.baseline), compare.test, compare.correction, f"{compare.alpha:g}", compare.bootstrap, compare.stats_seed]
        w.writerow(out)
    return buf.getvalue()
