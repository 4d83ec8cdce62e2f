"""Render saved results as leaderboard tables (Markdown, CSV, HTML) and figures. Never computes a score.

``leaderboard.csv``: one row per result, columns ``model,encoder,dataset,split,`` then every metric.
``leaderboard.md``: nDCG@10 pivot (rows = model/encoder, columns = datasets, plus the mean over
the datasets a row has all of), then the full per-result table.
``paper.{md,csv,html,png}``: the ModernBERT paper's Table 1 columns, then one table per task.

With a baseline (``CompareConfig.baseline``, ``--baseline BM25``) every table also shows, from the
per-query scores saved in each result (:mod:`benchmarks.significance`): a marker (▲ / ▼) on each
score that differs significantly from the baseline's on the same queries after the correction
over the comparisons of that table (the family), the 95% bootstrap CI of each mean (± in
Markdown and HTML, both bounds in CSV), a legend (test, correction, alpha, queries, resamples,
seed) and a table of the differences; :func:`write_per_query_plots` draws each pair's sorted
per-query differences. Without a baseline every table is byte for byte what it was before.
Results written before per-query scores were recorded get no CI or marker, and a note says so.
"""

from __future__ import annotations

import csv
import difflib
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.longdoc import parse_name
from benchmarks.plots import BarPanel, Differences, LengthPanel, draw_differences, draw_paper, length_curves, sorted_differences
from benchmarks import cells
from benchmarks.cells import EVAL_SPLIT, choose, natural, superseded_note
from benchmarks.results import Result, load_results, slug
from benchmarks.significance import Comparison, adjust, bootstrap_ci, compare
from benchmarks.spec import CompareConfig
from retrieval.io import atomic_write_text

KEY_COLUMNS = ["model", "encoder", "dataset", "split"]
HEADLINE_METRICS = ["ndcg@10", "recall@100", "mrr@10", "map@100"]

Cell = tuple[str, str, str]  # (row label, encoder, column): one score of a pivot table


def metric_columns(results: list[Result]) -> list[str]:
    seen = {m for r in results for m in r.metrics}
    rest = sorted(seen - set(HEADLINE_METRICS), key=lambda m: (m.split("@")[0], int(m.split("@")[1]) if "@" in m and m.split("@")[1].isdigit() else 0))
    return [m for m in HEADLINE_METRICS if m in seen] + rest


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def display_names(results: list[Result], everything: list[Result] | None = None) -> list[str]:
    """Each result's row label (:mod:`benchmarks.cells`): its model name, plus the settings that tell it apart
    from the same model's other results (``BM25 [top_k=100]``), so no table row silently hides another."""
    table = choose(results, everything)
    return [table.cell_of(r)[0].label for r in results]


def column_of(r: Result) -> str:
    """A result's column label: ``scifact`` (test split), ``scifact/train``; an MTEB task as its BEIR dataset."""
    return cells.column_of(r).label


def picked(results: list[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> tuple[list[str], list[tuple[str, str]], dict[Cell, Result]]:
    """Columns (datasets/splits), (label, encoder) rows in first-seen order, and the result each cell shows.

    The choice is :func:`benchmarks.cells.choose`'s, the one rule of every table: one column per dataset
    and split, one row per model, encoder and settings, and among results of the same experiment the
    newest; a cell whose newest result lacks ``metric`` is empty.
    """
    table = choose(results, everything).with_metric(metric)
    return [c.label for c in table.columns], [(row.label, row.encoder) for row in table.rows], {(row.label, row.encoder, col.label): r for (row, col), r in table.cells.items()}


def pivot(results: list[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> tuple[list[str], list[tuple[str, str]], dict[Cell, float]]:
    """Columns, (model, encoder) rows in first-seen order, and ``{(model, encoder, dataset/split): value}``."""
    cols, rows, cell = picked(results, metric, everything)
    return cols, rows, {k: r.metrics[metric] for k, r in cell.items()}


def split_of(column: str) -> str:
    """The split of a column label (``scifact/train`` -> ``train``; ``scifact`` -> the evaluation split)."""
    head = column.split(" (in-domain)")[0]
    return head.rpartition("/")[2] if "/" in head else EVAL_SPLIT


def _natural(name: str) -> tuple:
    return natural(name)


# ---- significance against a baseline: what the tables mark ---------------------------------------


def find_baseline(results: list[Result], name: str) -> list[Result]:
    """The results of the row ``name`` picks: a row label as the tables print it (``BM25``,
    ``final [3f9c0a]``, optionally with `` (encoder)``), else a result's model name or the model
    as given to ``--models`` (``minilm``); case-insensitive. Unknown or ambiguous: ValueError
    with the valid names (and a "did you mean").

    >>> rs = [Result("BM25", "bm25", "scifact", "test", "beir", {}, 2, 9, "k", {"model_spec": "bm25"})]
    >>> [r.model for r in find_baseline(rs, "bm25")]
    ['BM25']
    """
    labels = display_names(results)
    rows = list(dict.fromkeys(zip(labels, (r.encoder for r in results))))  # every result's row, shown or superseded
    want = name.strip().casefold()
    hits = [row for row in rows if want in (row[0].casefold(), f"{row[0]} ({row[1]})".casefold())]
    if not hits:
        named = {(label, r.encoder) for r, label in zip(results, labels) if want in (r.model.casefold(), str(r.provenance.get("model_spec", "")).casefold())}
        hits = [row for row in rows if row in named]
    valid = [f"{label} ({enc})" if sum(lab == label for lab, _ in rows) > 1 else label for label, enc in rows]
    if len(hits) > 1:
        raise ValueError(f"--baseline {name!r} names several rows: {', '.join(f'{lab} ({enc})' for lab, enc in hits)}; give one of them as printed")
    if not hits:
        lower: dict[str, str] = {}
        for v in valid + [r.model for r in results] + [str(r.provenance["model_spec"]) for r in results if r.provenance.get("model_spec")]:
            lower.setdefault(v.casefold(), v)  # the row label as printed, before a model spec of the same letters
        close = difflib.get_close_matches(want, list(lower), n=1, cutoff=0.5)
        hint = f"; did you mean {lower[close[0]]!r}?" if close else ""
        raise ValueError(f"--baseline {name!r} is no row of the leaderboard{hint} (valid: {', '.join(valid) or 'none, no results'})")
    return [r for r, label in zip(results, labels) if (label, r.encoder) == hits[0]]


@dataclass(frozen=True)
class Marks:
    """Significance of one table's cells against the baseline: what its renderers draw.

    The family is every comparison in ``comparisons``: each other row on each column where the
    baseline has per-query scores, corrected together (:func:`benchmarks.significance.adjust`).
    """

    config: CompareConfig
    metric: str
    baseline: tuple[str, str] | None  # the baseline's (label, encoder) in this table; None: not in it
    comparisons: dict[Cell, Comparison]  # every other row against the baseline, per column
    ci: dict[Cell, tuple[float, float]]  # bootstrap CI of the mean of every cell with per-query scores
    scores: dict[Cell, dict[str, float]]  # {qid: score} of those cells
    queries: dict[str, int]  # column -> queries compared
    missing: tuple[str, ...]  # "label (encoder) on column": no per-query scores, so no CI or marker
    no_baseline: tuple[str, ...]  # columns without a baseline result that has per-query scores
    sources: dict[tuple, Cell]  # identity(result) -> the cell it shows


identity = cells.rid  # what tells two results apart, the same whether read from disk or just computed


def per_query_scores(r: Result, metric: str) -> dict[str, float] | None:
    """``{qid: score}`` of ``metric`` from the result's compact ``per_query``; None in older files."""
    pq = r.per_query or {}
    if "qids" not in pq or metric not in pq:
        return None
    qids, values = pq["qids"], pq[metric]
    where = f"result {r.stem}.json ({r.model}, {r.encoder}, {column_of(r)}), field per_query"
    if len(qids) != len(values):
        raise ValueError(f"{where}[{metric!r}]: {len(values)} values for {len(qids)} qids")
    if len(set(qids)) != len(qids):
        raise ValueError(f"{where}['qids']: {len(qids) - len(set(qids))} repeated query ids")
    bad = [q for q, v in zip(qids, values) if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise ValueError(f"{where}[{metric!r}]: {len(bad)} values are not finite numbers (first: query {bad[0]!r})")
    return dict(zip(qids, map(float, values)))


def _same_queries(r: Result, a: dict, base: Result, b: dict) -> None:
    if set(a) != set(b):
        raise ValueError(
            f"{column_of(r)}: {r.model} ({r.encoder}, result {r.stem}.json) has {len(a)} queries, baseline {base.model} ({base.encoder}, "
            f"result {base.stem}.json) has {len(b)}, {len(set(a) & set(b))} shared: a paired comparison needs the same queries in both (same split, same data)"
        )


def table_marks(results: list[Result], config: CompareConfig, baseline: Sequence[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> Marks:
    """Compare every cell of the pivot of ``results`` with the baseline's cell of its column.

    ``baseline`` comes from :func:`find_baseline` over every result rendered (one table may lack
    it); ``everything`` labels the rows as the rendered table does. Raw p-values per column
    (:func:`benchmarks.significance.compare`, ``correction="none"``), then one correction over the whole table.
    """
    cols, _, cell = picked(results, metric, everything)
    base_ids = {identity(r) for r in baseline}
    base_row = next((key[:2] for key, r in cell.items() if identity(r) in base_ids), None)
    scores, ci, missing = {}, {}, []
    for key, r in cell.items():
        s = per_query_scores(r, metric)
        if s is None:
            missing.append(key)
            continue
        scores[key] = s
        ci[key] = bootstrap_ci(list(s.values()), n=config.bootstrap, seed=config.stats_seed)
    raw: dict[Cell, Comparison] = {}
    queries, no_baseline = {}, []
    for col in cols:
        bkey = (*base_row, col) if base_row else None
        if bkey not in scores:
            if any(k[2] == col and k[:2] != base_row for k in cell):
                no_baseline.append(col)
            continue
        systems = [k for k in scores if k[2] == col and k != bkey]
        for k in systems:
            _same_queries(cell[k], scores[k], cell[bkey], scores[bkey])
        queries[col] = len(scores[bkey])
        if not systems:
            continue
        base_name = f"{base_row[0]} ({base_row[1]})"  # no system's name: systems are the other rows
        per_query = {base_name: scores[bkey]} | {f"{k[0]} ({k[1]})": scores[k] for k in systems}
        found = compare(per_query, base_name, metric=metric, test=config.test, correction="none", alpha=config.alpha, n=config.permutations, n_bootstrap=config.bootstrap, seed=config.stats_seed)
        raw.update(zip(systems, found))
    corrected = dict(zip(raw, adjust(list(raw.values()), config.correction, config.alpha)))
    return Marks(
        config=config,
        metric=metric,
        baseline=base_row,
        comparisons=corrected,
        ci=ci,
        scores=scores,
        queries=queries,
        missing=tuple(f"{k[0]} ({k[1]}) on {k[2]}" for k in missing),
        no_baseline=tuple(no_baseline),
        sources={identity(r): key for key, r in cell.items()},
    )


def marks_for(results: list[Result], config: CompareConfig | None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> Marks | None:
    """:func:`table_marks` of one table (``results``), the baseline found among ``everything`` rendered; None without a baseline."""
    if config is None or config.baseline is None:
        return None
    return table_marks(results, config, find_baseline(everything if everything is not None else results, config.baseline), metric, everything)


TEST_NAMES = {"t": "paired t-test", "randomization": "Fisher randomization test", "wilcoxon": "Wilcoxon signed-rank test"}
CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "no"}


def marker(c: Comparison | None) -> str:
    """▲ / ▼: significantly above / below the baseline after the correction; † significant with equal means (Wilcoxon)."""
    if c is None or not c.significant:
        return ""
    return "▲" if c.diff > 0 else "▼" if c.diff < 0 else "†"


def _num(v: float | None, scale: float, digits: int) -> str:
    return "—" if v is None else f"{scale * v:.{digits}f}"


def _with_marks(text: str, key: Cell | None, marks: Marks | None, scale: float, digits: int) -> str:
    """``text`` (a formatted score) plus its marker and ``± half-width`` of its CI, if any."""
    if marks is None or key is None:
        return text
    text += marker(marks.comparisons.get(key))
    if key in marks.ci:
        lo, hi = marks.ci[key]
        text += f" ± {scale * (hi - lo) / 2:.{digits}f}"
    return text


def legend(marks: Marks, scale: float = 1.0) -> list[str]:
    """The lines that say what the markers, the ± and the missing ones mean in one table."""
    c = marks.config
    base = f"{marks.baseline[0]} ({marks.baseline[1]})" if marks.baseline else f"{c.baseline} (not in this table)"
    test = TEST_NAMES[c.test] + (f" ({c.permutations} sign-flip permutations, seed {c.stats_seed})" if c.test == "randomization" else "")
    x100 = ", x 100" if scale != 1 else ""
    if not marks.scores:
        return [f"Baseline: {base}. No result in this table has per-query scores (written before they were recorded): no CI, test or marker."]
    lines = [
        f"Baseline: {base}. ▲ / ▼: {marks.metric} significantly above / below the baseline's on the same queries: two-sided {test}, "
        f"{CORRECTION_NAMES[c.correction]} correction over the family of the {len(marks.comparisons)} comparisons in this table "
        f"(each other row on each dataset where the baseline has per-query scores), alpha {c.alpha:g}.",
        f"±: half the width of the 95% percentile bootstrap CI of the mean over queries{x100} ({c.bootstrap} resamples, seed {c.stats_seed}); the CSV has both bounds.",
    ]
    if any(marker(x) == "†" for x in marks.comparisons.values()):
        lines.append("†: significant with equal means (the signed-rank test tests the median difference).")
    if marks.queries:
        lines.append("Queries compared: " + ", ".join(f"{col} {n}" for col, n in marks.queries.items()) + ".")
    if marks.missing:
        lines.append("No per-query scores in the result (written before they were recorded), so no CI or marker: " + ", ".join(marks.missing) + ".")
    if marks.no_baseline:
        lines.append(f"No marker on {', '.join(marks.no_baseline)}: no baseline result with per-query scores there.")
    return lines


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def differences_markdown(marks: Marks, title: str) -> list[str]:
    """The comparisons behind the markers: one row per (row, dataset) with Δ, its paired CI and both p-values."""
    if not marks.comparisons:
        return []
    corr = CORRECTION_NAMES[marks.config.correction] if marks.config.correction != "none" else "uncorrected"
    body = [
        [lab, enc, col, str(c.n_queries), f"{c.mean:.4f}", f"{c.baseline_mean:.4f}", f"{c.diff:+.4f}", f"[{c.diff_ci[0]:+.4f}, {c.diff_ci[1]:+.4f}]", _p(c.p), _p(c.p_adjusted), marker(c)]
        for (lab, enc, col), c in marks.comparisons.items()
    ]
    header = ["model", "encoder", "dataset", "queries", "mean", "baseline", "Δ", "95% CI of Δ (paired bootstrap)", "p", f"p ({corr})", "sig."]
    return [f"## {title}\n", _md_table(header, body), ""]


# ---- the default layout -------------------------------------------------------------------------


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
    w.writerow(KEY_COLUMNS + cols + ["num_queries", "num_docs", "total_s"] + (extra if marks else []))
    for (row, col), r in shown:
        dataset = col.dataset + (" (in-domain)" if col.in_domain else "")
        line = [row.label, r.encoder, dataset, col.split] + [f"{r.metrics[c]:.5f}" if c in r.metrics else "" for c in cols] + [r.num_queries, r.num_docs, f"{r.timings.get('total_s', 0):.1f}"]
        if marks:
            line += _csv_marks(marks, marks.sources.get(identity(r)))
        w.writerow(line)
    return buf.getvalue()


def _csv_marks(marks: Marks, key: Cell | None) -> list:
    c, cfg = marks.comparisons.get(key), marks.config
    ci = [f"{x:.5f}" for x in marks.ci[key]] if key in marks.ci else ["", ""]
    base = marks.baseline[0] if marks.baseline else ""
    comp = [f"{c.diff:.5f}", f"{c.diff_ci[0]:.5f}", f"{c.diff_ci[1]:.5f}", f"{c.p:.6g}", f"{c.p_adjusted:.6g}", str(c.significant).lower()] if c else [""] * 6
    return ci + [base] + comp + [cfg.test, cfg.correction, f"{cfg.alpha:g}", len(marks.comparisons), cfg.bootstrap, cfg.stats_seed]


def split_tables(cols: list[str]) -> list[tuple[str, list[str]]]:
    """Columns grouped by split, the evaluation split first: a mean is never taken across splits."""
    groups: dict[str, list[str]] = {}
    for c in cols:
        groups.setdefault(split_of(c), []).append(c)
    return sorted(groups.items(), key=lambda kv: (kv[0] != EVAL_SPLIT, kv[0]))


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
        body = pivot_rows(rows, scols, cell, lambda v, key: _with_marks(f"{v:.4f}", key, marks, 1, 4), lambda m: f"{m:.4f}")
        header = ["model", "encoder"] + scols + (["mean"] if len(scols) > 1 else [])
        title = f"## {metric}" + ("" if split == EVAL_SPLIT else f" (split {split})")
        out += [f"{title}\n", _md_table(header, body), ""]
    if marks:
        out += [f"- {line}" for line in legend(marks)] + [""]
        out += differences_markdown(marks, f"{metric} against {marks.baseline[0] if marks.baseline else compare.baseline}")
    table = choose(results, everything)
    notes = superseded_note(table)
    if notes:
        out += ["Superseded results (same experiment, older code or an earlier run; the newest is shown):", ""] + [f"- {n}" for n in notes] + [""]
    shown = [(row, col, table.cells[(row, col)]) for row in table.rows for col in table.columns if (row, col) in table.cells]
    mcols = metric_columns([r for *_, r in shown])
    full = [[row.label, r.encoder, col.dataset + (" (in-domain)" if col.in_domain else ""), col.split] + [f"{r.metrics[c]:.4f}" if c in r.metrics else "—" for c in mcols]
            + [f"{r.timings.get('total_s', 0):.1f}"] for row, col, r in shown]
    out += ["## All metrics\n", _md_table(KEY_COLUMNS + mcols + ["time (s)"], full), ""]
    return "\n".join(out)


Render = Callable[[list[Result], "CompareConfig | None"], str]

# Every table file the default layout writes, by name: write_leaderboard writes exactly these, and the invariant
# suite (tests/invariants) checks each (re-rendered byte for byte, cells unmoved by unrelated results).
OUTPUTS: dict[str, Render] = {
    "leaderboard.md": lambda rs, c: "# Leaderboard\n\n" + to_markdown(rs, compare=c),
    "leaderboard.csv": lambda rs, c: to_csv(rs, c),
}


def write_leaderboard(folder: Path, compare: CompareConfig | None = None) -> list[Result]:
    """Read every result JSON in ``folder``; write each of :data:`OUTPUTS` (``leaderboard.md``, ``leaderboard.csv``) there."""
    folder = Path(folder)
    results = load_results(folder)
    for name, render in OUTPUTS.items():
        atomic_write_text(folder / name, render(results, compare))
    return results


# ---- per-query pictures -------------------------------------------------------------------------


def per_query_differences(results: list[Result], compare: CompareConfig, metric: str = "ndcg@10") -> list[tuple[str, Differences]]:
    """``(file name, sorted differences)`` for each (row, baseline, dataset) that both have per-query scores.

    File names: ``<row>-vs-<baseline>__<dataset>.png`` (the row's encoder added where two rows share a label).
    """
    marks = marks_for(results, compare, metric)
    if marks is None or marks.baseline is None:
        return []
    labels = [lab for lab, _ in dict.fromkeys(k[:2] for k in marks.scores)]
    out = []
    for (lab, enc, col) in marks.comparisons:
        d = sorted_differences(marks.scores[(lab, enc, col)], marks.scores[(*marks.baseline, col)], names=(lab, marks.baseline[0]), dataset=col, metric=metric, n=compare.bootstrap, seed=compare.stats_seed)
        who = lab if labels.count(lab) == 1 else f"{lab}-{enc}"
        out.append((f"{slug(who)}-vs-{slug(marks.baseline[0])}__{slug(col)}.png", d))
    return out


def write_per_query_plots(folder: Path, compare: CompareConfig | None, metric: str = "ndcg@10") -> list[Path]:
    """``<folder>/per-query/*.png`` for every saved result against the baseline (the default and paper layouts'
    datasets alike); nothing without a baseline."""
    if compare is None or compare.baseline is None:
        return []
    folder = Path(folder)
    paths = []
    for name, d in per_query_differences(load_results(folder), compare, metric):
        draw_differences(d, folder / "per-query" / name)
        paths.append(folder / "per-query" / name)
    return paths


# ---- the ModernBERT paper's Table 1 layout ------------------------------------------------------

PAPER_COLUMNS = ["BEIR-DPR", "MLDR-OOD", "MLDR-ID", "BEIR-ColBERT", "MLDR-ColBERT", "CSN", "SQA"]
CODE_COLUMNS = {"codesearchnet": "CSN", "stackoverflowqa": "SQA"}


def paper_column(r: Result) -> str | None:
    """Which Table 1 column a result feeds (None: only in the per-task breakdown).

    BEIR columns average the BEIR datasets (an MTEB task counts as its BEIR dataset, once);
    MLDR columns take datasets named ``mldr`` (``MLDR-ID`` when the result says the model was
    trained in domain); BM25 fills the DPR (single-vector) columns as the lexical baseline.
    """
    dataset = cells.column_of(r).dataset.lower()
    single = r.encoder in ("dpr", "bm25")
    if r.task in ("beir", "mteb") and not dataset.startswith("mldr"):
        return "BEIR-DPR" if single else "BEIR-ColBERT" if r.encoder == "colbert" else None
    if dataset.startswith("mldr"):
        if r.encoder == "colbert":
            return "MLDR-ColBERT"
        return "MLDR-ID" if r.provenance.get("in_domain") else "MLDR-OOD"
    return CODE_COLUMNS.get(dataset) if single else None


def _paper_cells(results: list[Result], metric: str, everything: list[Result] | None = None) -> tuple[list[str], dict[tuple[str, str], dict[str, Result]], dict[str, list[str]]]:
    """Table 1 rows, ``{(row, column): {dataset: result}}`` and the datasets each column averages.

    The cells are :func:`benchmarks.cells.choose`'s on the evaluation split (``test``) only: a train
    or dev result never feeds Table 1, a model's other settings are another row (labelled), and a
    dataset counts once per row (an MTEB run of it is a row of its own, ``[MTEB]``).
    """
    table = choose(results, everything).with_metric(metric)
    found = [(row, col, paper_column(r), r) for (row, col), r in table.cells.items() if col.split == EVAL_SPLIT]
    found = [(row, col, pc, r) for row, col, pc, r in found if pc is not None]
    clash = {row.label for row, col, pc, _ in found if sum(1 for x in found if x[0].label == row.label and x[2] == pc and x[1].dataset == col.dataset) > 1}
    order = {row: i for i, row in enumerate(table.rows)}
    cells: dict[tuple[str, str], dict[str, Result]] = {}
    used: dict[str, list[str]] = {c: [] for c in PAPER_COLUMNS}
    models: list[str] = []
    for row, col, pc, r in sorted(found, key=lambda x: (order[x[0]], table.columns.index(x[1]))):
        name = f"{row.label} ({row.encoder})" if row.label in clash else row.label  # two kinds under one name would share a cell
        if name not in models:
            models.append(name)
        cells.setdefault((name, pc), {})[col.dataset] = r
        if col.dataset not in used[pc]:
            used[pc].append(col.dataset)
    return models, cells, used


def paper_table(results: list[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> tuple[list[str], list[list[float | None]], dict[str, list[str]], list[list[bool]]]:
    """Rows = models, columns = Table 1; returns (row names, values, datasets averaged per column,
    and per cell whether the row lacks some of the column's datasets, so its mean is not comparable)."""
    models, cells, used = _paper_cells(results, metric, everything)
    values, partial = [], []
    for m in models:
        row, part = [], []
        for c in PAPER_COLUMNS:
            vals = [r.metrics[metric] for r in cells.get((m, c), {}).values()]
            row.append(sum(vals) / len(vals) if vals else None)
            part.append(bool(vals) and len(vals) < len(used[c]))
        values.append(row)
        partial.append(part)
    return models, values, used, partial


def _tasks(results: list[Result]) -> dict[str, list[Result]]:
    tasks: dict[str, list[Result]] = {}
    for r in results:
        tasks.setdefault(r.task, []).append(r)
    return tasks


def breakdowns(results: list[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> dict[str, tuple[list[str], list[tuple[str, str]], dict]]:
    """Per task: (dataset columns, (model, encoder) rows, cells) — see :func:`pivot`; rows labelled over ``everything``."""
    return {t: pivot(rs, metric, everything if everything is not None else results) for t, rs in _tasks(results).items()}


def task_marks(results: list[Result], compare: CompareConfig | None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> dict[str, Marks]:
    """Per task table, its :class:`Marks` (each task table is one family); {} without a baseline."""
    if compare is None or compare.baseline is None:
        return {}
    everything = everything if everything is not None else results
    baseline = find_baseline(everything, compare.baseline)
    return {t: table_marks(rs, compare, baseline, metric, everything) for t, rs in _tasks(results).items()}


def _table1_key(cells: dict[str, Result], marks: dict[str, Marks]) -> tuple[Marks | None, Cell | None]:
    """A Table 1 cell from one dataset carries that dataset's marks (from its task table); a mean over several, none."""
    if len(cells) != 1:
        return None, None
    (r,) = cells.values()
    m = marks.get(r.task)
    return (m, m.sources.get(identity(r))) if m else (None, None)


def _table1_texts(results: list[Result], metric: str, marks: dict[str, Marks], everything: list[Result] | None = None) -> tuple[list[str], list[list[str]], dict[str, list[str]], list[list[bool]]]:
    models, values, used, partial = paper_table(results, metric, everything)
    _, cells, _ = _paper_cells(results, metric, everything)
    texts = []
    for m, row, part in zip(models, values, partial):
        out = []
        for c, v, p in zip(PAPER_COLUMNS, row, part):
            mk, key = _table1_key(cells.get((m, c), {}), marks)
            out.append(_with_marks(_fmt(v) + ("*" if p else ""), key, mk, 100, 1) if v is not None else _fmt(v))
        texts.append(out)
    return models, texts, used, partial


TABLE1_NOTE = "▲ / ▼ and ± on a Table 1 cell that comes from one dataset are that dataset's, from its per-task table below (that table's family); a mean over several datasets carries none."


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def paper_markdown(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None, everything: list[Result] | None = None) -> str:
    """Table 1 (scores x100, as the paper prints them), then one breakdown per task with its mean
    (with a baseline: marks, legends, differences; ``everything`` as in :func:`to_markdown`)."""
    everything = everything if everything is not None else results
    marks = task_marks(results, compare, metric, everything)
    models, texts, used, partial = _table1_texts(results, metric, marks, everything)
    rows = [[m] + row for m, row in zip(models, texts)]
    out = [f"## Table 1 layout ({metric} x 100, split {EVAL_SPLIT})\n", _md_table(["model"] + PAPER_COLUMNS, rows), ""]
    notes = [f"- {c}: mean over {', '.join(ds)}" for c, ds in used.items() if ds]
    if any(any(p) for p in partial):
        notes.append("- \\* the row has only some of the column's datasets: its mean is not comparable with full rows.")
    out += notes + ["- BM25 rows fill the single-vector (DPR) columns as the lexical baseline.",
                    f"- Only {EVAL_SPLIT}-split results feed Table 1; other splits are in the per-task tables, each split with its own mean."] + ([f"- {TABLE1_NOTE}"] if marks else []) + [""]
    for task, (cols, rows, cell) in breakdowns(results, metric, everything).items():
        mk = marks.get(task)
        for split, scols in split_tables(cols):
            body = pivot_rows(rows, scols, cell, lambda v, key: _with_marks(_fmt(v), key, mk, 100, 1), _fmt, always_mean=True)
            title = f"## {task} ({metric} x 100)" if split == EVAL_SPLIT else f"## {task}, split {split} ({metric} x 100)"
            out += [f"{title}\n", _md_table(["model", "encoder"] + scols + ["mean"], body), ""]
        if mk:
            out += [f"- {line}" for line in legend(mk, scale=100)] + [""]
            out += differences_markdown(mk, f"{task}: {metric} against {mk.baseline[0] if mk.baseline else compare.baseline}")
    return "\n".join(out)


def paper_csv(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None) -> str:
    """Table 1 as CSV; with a baseline, per column its CI bounds and how it compares (higher / lower / n.s.),
    for cells from one dataset, then the legend's settings."""
    marks = task_marks(results, compare, metric)
    models, values, _, _ = paper_table(results, metric)
    _, cells, _ = _paper_cells(results, metric)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = [f"{c}_{x}" for c in PAPER_COLUMNS for x in ("ci_lo", "ci_hi", "vs_baseline")] + ["baseline", "test", "correction", "alpha", "bootstrap", "stats_seed"]
    w.writerow(["model"] + PAPER_COLUMNS + (extra if marks else []))
    for m, row in zip(models, values):
        out = [m] + ["" if v is None else f"{v:.5f}" for v in row]
        if marks:
            for c in PAPER_COLUMNS:
                mk, key = _table1_key(cells.get((m, c), {}), marks)
                ci = [f"{x:.5f}" for x in mk.ci[key]] if mk and key in mk.ci else ["", ""]
                comp = mk.comparisons.get(key) if mk else None
                out += ci + ["" if comp is None else "n.s." if not comp.significant else "higher" if comp.diff > 0 else "lower" if comp.diff < 0 else "differs"]
            out += [next((mk.baseline[0] for mk in marks.values() if mk.baseline), compare.baseline), compare.test, compare.correction, f"{compare.alpha:g}", compare.bootstrap, compare.stats_seed]
        w.writerow(out)
    return buf.getvalue()


class _Td(str):
    """A rendered ``<td>`` element (not escaped again)."""


def _html_cell(text: str, key: Cell | None, marks: Marks | None) -> _Td:
    """A ``<td>``; with marks, the exact CI and p-values in its tooltip."""
    tips = []
    if marks is not None and key is not None:
        if key in marks.ci:
            tips.append(f"95% CI [{100 * marks.ci[key][0]:.2f}, {100 * marks.ci[key][1]:.2f}]")
        c = marks.comparisons.get(key)
        if c is not None:
            tips.append(f"vs baseline {100 * c.diff:+.2f} [{100 * c.diff_ci[0]:+.2f}, {100 * c.diff_ci[1]:+.2f}], p {_p(c.p)}, adjusted {_p(c.p_adjusted)}")
    title = f" title='{html.escape('; '.join(tips))}'" if tips else ""
    return _Td(f"<td{title}>{html.escape(text)}</td>")


def paper_html(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None) -> str:
    def table(header, rows):
        th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        trs = "".join("<tr>" + "".join(c if isinstance(c, _Td) else f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table>\n<thead><tr>{th}</tr></thead>\n<tbody>{trs}</tbody>\n</table>"

    def notes(lines):
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"

    marks = task_marks(results, compare, metric)
    models, texts, _, _ = _table1_texts(results, metric, marks)
    _, cells, _ = _paper_cells(results, metric)
    t1 = []
    for m, row in zip(models, texts):
        if marks:
            keys = [_table1_key(cells.get((m, c), {}), marks) for c in PAPER_COLUMNS]  # (marks, cell) per column
            row = [_html_cell(t, key, mk) for t, (mk, key) in zip(row, keys)]
        t1.append([m] + row)
    parts = [f"<h2>Table 1 layout ({html.escape(metric)} x 100, split {EVAL_SPLIT})</h2>", table(["model"] + PAPER_COLUMNS, t1)] + ([notes([TABLE1_NOTE])] if marks else [])
    for task, (cols, rows, cell) in breakdowns(results, metric).items():
        mk = marks.get(task)
        body = [[m, e] + [_html_cell(_with_marks(_fmt(cell.get((m, e, c))), (m, e, c) if (m, e, c) in cell else None, mk, 100, 1), (m, e, c), mk) if mk else _fmt(cell.get((m, e, c))) for c in cols] for m, e in rows]
        parts += [f"<h2>{html.escape(task)}</h2>", table(["model", "encoder"] + cols, body)] + ([notes(legend(mk, scale=100))] if mk else [])
    style = "table{border-collapse:collapse;font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Leaderboard</title><style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def paper_panels(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None) -> list[BarPanel | LengthPanel]:
    """The paper figure's panels, per task: ``metric`` against document length for the generated
    long-document suites (with bootstrap CI bands where results have per-query scores), bars per
    dataset for the rest."""
    cfg = compare or CompareConfig()  # the bootstrap's resamples and seed, with or without a baseline
    panels: list[BarPanel | LengthPanel] = []
    for task, rs in _tasks(results).items():
        cols, rows, cell = picked(rs, metric, results)
        curves = length_curves({(f"{k[0]} ({k[1]})", k[2]): (r.metrics[metric], _values(per_query_scores(r, metric))) for k, r in cell.items()}, n=cfg.bootstrap, seed=cfg.stats_seed)
        if curves:
            panels.append(LengthPanel(f"{task}: {metric} against document length", curves))
        rest = [c for c in cols if not (curves and parse_name(c))]
        if rest:
            panels.append(BarPanel(task, rest, rows, {k: r.metrics[metric] for k, r in cell.items() if k[2] in rest}))
    return panels


def _values(scores: dict[str, float] | None) -> list[float] | None:
    return None if scores is None else list(scores.values())


def paper_png(results: list[Result], path: Path, metric: str = "ndcg@10", compare: CompareConfig | None = None) -> None:
    """One panel per task (:func:`paper_panels`), drawn by :func:`benchmarks.plots.draw_paper`."""
    draw_paper(paper_panels(results, metric, compare), path, metric)


# The paper layout's table files, by name (as OUTPUTS); paper.png is drawn beside them (FIGURES).
PAPER_OUTPUTS: dict[str, Render] = {
    "paper.md": lambda rs, c: "# Leaderboard (ModernBERT Table 1 layout)\n\n" + paper_markdown(rs, compare=c),
    "paper.csv": lambda rs, c: paper_csv(rs, compare=c),
    "paper.html": lambda rs, c: paper_html(rs, compare=c),
}
FIGURES: dict[str, Callable[[list[Result], Path, "CompareConfig | None"], None]] = {
    "paper.png": lambda rs, path, c: paper_png(rs, path, compare=c),
}


def write_paper_leaderboard(folder: Path, compare: CompareConfig | None = None) -> list[Result]:
    """Each of :data:`PAPER_OUTPUTS` (``paper.md``, ``paper.csv``, ``paper.html``) and :data:`FIGURES` (``paper.png``) in ``folder`` from its saved results."""
    folder = Path(folder)
    results = load_results(folder)
    for name, render in PAPER_OUTPUTS.items():
        atomic_write_text(folder / name, render(results, compare))
    for name, draw in FIGURES.items():
        draw(results, folder / name, compare)
    return results
