"""Markdown: the default layout's pivot per split and every metric, and the paper layout's Table 1 and per-task tables."""

from __future__ import annotations

from benchmarks.cells import EVAL_SPLIT, choose, superseded_note
from benchmarks.marks import CORRECTION_NAMES, TABLE1_NOTE, Marks, legend, marker, marks_for, ptext, table1_key, task_marks, with_marks
from benchmarks.results import Result
from benchmarks.spec import CompareConfig
from benchmarks.standings import Ranks, rank_text, ranks_legend, table1_ranks, table_ranks
from benchmarks.table import KEY_COLUMNS, PAPER_COLUMNS, Cell, breakdowns, by_task, metric_columns, paper_cells, paper_table, pivot, split_tables

def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def differences_markdown(marks: Marks, title: str) -> list[str]:
    """The comparisons behind the markers: one row per (row, dataset) with Δ, its paired CI and both p-values."""
    if not marks.comparisons:
        return []
    corr = CORRECTION_NAMES[marks.config.correction] if marks.config.correction != "none" else "uncorrected"
    body = [
        [lab, enc, col, str(c.n_queries), f"{c.mean:.4f}", f"{c.baseline_mean:.4f}", f"{c.diff:+.4f}", f"[{c.diff_ci[0]:+.4f}, {c.diff_ci[1]:+.4f}]", ptext(c.p), ptext(c.p_adjusted), marker(c)]
        for (lab, enc, col), c in marks.comparisons.items()
    ]
    header = ["model", "encoder", "dataset", "queries", "mean", "baseline", "Δ", "95% CI of Δ (paired bootstrap)", "p", f"p ({corr})", "sig."]
    return [f"## {title}\n", md_table(header, body), ""]


def pivot_rows(rows: list[tuple[str, str]], cols: list[str], cell: dict[Cell, float], fmt, mean_fmt, *, always_mean: bool = False) -> list[list[str]]:
    """Rows of a pivot over ``cols`` (one split), with the mean over the columns a row has all of when there are several
    (``always_mean``: also over one column)."""
    body = []
    for model, enc in rows:
        vals = [cell.get((model, enc, c)) for c in cols]
        if all(v is None for v in vals):
            continue  # a row with nothing in this split
        texts = [fmt(v, (model, enc, c)) if v is not None else "—" for v, c in zip(vals, cols)]
        mean = sum(vals) / len(vals) if all(v is not None for v in vals) else None
        body.append([model, enc] + texts + ([mean_fmt(mean) if mean is not None else "—"] if len(cols) > 1 or always_mean else []))
    return body


def to_markdown(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None, everything: list[Result] | None = None) -> str:
    """The pivot of ``metric``, one table per split (with a baseline: marks, legend, differences), then every metric.
    ``everything``: the results the baseline is looked up in and the rows are labelled over (default ``results``), e.g. the whole folder."""
    if not results:
        return "_no results_\n"
    marks = marks_for(results, compare, metric, everything)
    cols, rows, cell = pivot(results, metric, everything)
    out = []
    for split, scols in split_tables(cols):
        body = pivot_rows(rows, scols, cell, lambda v, key: with_marks(f"{v:.4f}", key, marks, 1, 4), lambda m: f"{m:.4f}")
        header = ["model", "encoder"] + scols + (["mean"] if len(scols) > 1 else [])
        title = f"## {metric}" + ("" if split == EVAL_SPLIT else f" (split {split})")
        out += [f"{title}\n", md_table(header, body), ""]
    if marks:
        out += [f"- {line}" for line in legend(marks)] + [""]
        out += differences_markdown(marks, f"{metric} against {marks.baseline[0] if marks.baseline else compare.baseline}")
    out += ranks_markdown(table_ranks(results, compare, metric, everything), rows, cols, f"Rank intervals and tiers ({metric})")
    table = choose(results, everything)
    notes = superseded_note(table)
    if notes:
        out += ["Superseded results (same experiment, older code or an earlier run; the newest is shown):", ""] + [f"- {n}" for n in notes] + [""]
    shown = [(row, col, table.cells[(row, col)]) for row in table.rows for col in table.columns if (row, col) in table.cells]
    mcols = metric_columns([r for *_, r in shown])
    full = [[row.label, r.encoder, col.dataset + (" (in-domain)" if col.in_domain else ""), col.split] + [f"{r.metrics[c]:.4f}" if c in r.metrics else "—" for c in mcols]
            + [f"{r.timings.get('total_s', 0):.1f}"] for row, col, r in shown]
    out += ["## All metrics\n", md_table(KEY_COLUMNS + mcols + ["time (s)"], full), ""]
    return "\n".join(out)


def ranks_markdown(ranks: Ranks, rows: list[tuple[str, str]], cols: list[str], title: str) -> list[str]:
    """One table of rank intervals per split: a column per dataset with ranks, and the mean over datasets; then the legend."""
    if not ranks.any():
        return []
    out = []
    for split, scols in split_tables(cols):
        ranked = [c for c in scols if c in ranks.columns]
        mean = ranks.means.get(split)
        if not ranked and mean is None:
            continue
        header = ["model", "encoder"] + ranked + ([f"mean ({', '.join(mean.columns)})"] if mean else [])
        body = []
        for row in rows:
            texts = [rank_text(ranks.columns[c].get(row)) for c in ranked] + ([rank_text(mean.standings.get(row))] if mean else [])
            if any(t != "—" for t in texts):
                body.append([row[0], row[1]] + texts)
        out += [f"## {title}" + ("" if split == EVAL_SPLIT else f" (split {split})") + "\n", md_table(header, body), ""]
    return out + [f"- {line}" for line in ranks_legend(ranks)] + [""]


def fmt100(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def table1_texts(results: list[Result], metric: str, marks: dict[str, Marks], everything: list[Result] | None = None) -> tuple[list[str], list[list[str]], dict[str, list[str]], list[list[bool]]]:
    models, values, used, partial = paper_table(results, metric, everything)
    _, cells, _ = paper_cells(results, metric, everything)
    texts = []
    for m, row, part in zip(models, values, partial):
        out = []
        for c, v, p in zip(PAPER_COLUMNS, row, part):
            mk, key = table1_key(cells.get((m, c), {}), marks)
            out.append(with_marks(fmt100(v) + ("*" if p else ""), key, mk, 100, 1) if v is not None else fmt100(v))
        texts.append(out)
    return models, texts, used, partial


def paper_markdown(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None, everything: list[Result] | None = None) -> str:
    """Table 1 (scores x100, as the paper prints them), then one breakdown per task with its mean
    (with a baseline: marks, legends, differences; ``everything`` as in :func:`to_markdown`)."""
    everything = everything if everything is not None else results
    marks = task_marks(results, compare, metric, everything)
    models, texts, used, partial = table1_texts(results, metric, marks, everything)
    rows = [[m] + row for m, row in zip(models, texts)]
    out = [f"## Table 1 layout ({metric} x 100, split {EVAL_SPLIT})\n", md_table(["model"] + PAPER_COLUMNS, rows), ""]
    notes = [f"- {c}: mean over {', '.join(ds)}" for c, ds in used.items() if ds]
    if any(any(p) for p in partial):
        notes.append("- \\* the row has only some of the column's datasets: its mean is not comparable with full rows.")
    out += notes + ["- BM25 rows fill the single-vector (DPR) columns as the lexical baseline.",
                    f"- Only {EVAL_SPLIT}-split results feed Table 1; other splits are in the per-task tables, each split with its own mean."] + ([f"- {TABLE1_NOTE}"] if marks else []) + [""]
    t1 = table1_ranks(results, compare, metric, everything)
    if t1:
        rcols = [c for c in PAPER_COLUMNS if c in t1]
        body = [[m] + [rank_text(t1[c].standings.get((m, ""))) for c in rcols] for m in models if any((m, "") in t1[c].standings for c in rcols)]
        out += [f"## Table 1 rank intervals and tiers ({metric})\n", md_table(["model"] + rcols, body), ""]
        out += [f"- {c}: ranks over {', '.join(t1[c].columns)}" for c in rcols] + [f"- {line}" for line in ranks_legend(Ranks(compare or CompareConfig(), metric, {}, {}, ()))] + [""]
    for task, (cols, rows, cell) in breakdowns(results, metric, everything).items():
        mk = marks.get(task)
        for split, scols in split_tables(cols):
            body = pivot_rows(rows, scols, cell, lambda v, key: with_marks(fmt100(v), key, mk, 100, 1), fmt100, always_mean=True)
            title = f"## {task} ({metric} x 100)" if split == EVAL_SPLIT else f"## {task}, split {split} ({metric} x 100)"
            out += [f"{title}\n", md_table(["model", "encoder"] + scols + ["mean"], body), ""]
        if mk:
            out += [f"- {line}" for line in legend(mk, scale=100)] + [""]
            out += differences_markdown(mk, f"{task}: {metric} against {mk.baseline[0] if mk.baseline else compare.baseline}")
        out += ranks_markdown(table_ranks(by_task(results)[task], compare, metric, everything), rows, cols, f"{task}: rank intervals and tiers ({metric})")
    return "\n".join(out)
