"""Significance against a baseline, per table: what the renderers mark (▲ / ▼), the CIs (±) and the legend.

From the per-query scores saved in each result (:mod:`benchmarks.significance`): every other row of
a table is compared with the baseline's row on each column where both have per-query scores, on the
same queries; the p-values are corrected over the whole table (the family); each cell with per-query
scores gets the 95% bootstrap CI of its mean. Results written before per-query scores were recorded
get no CI or marker, and the legend says so.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks import cells
from benchmarks.results import Result
from benchmarks.significance import Comparison, adjust, bootstrap_ci, compare
from benchmarks.spec import CompareConfig
from benchmarks.table import Cell, by_task, column_of, display_names, picked

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


def task_marks(results: list[Result], compare: CompareConfig | None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> dict[str, Marks]:
    """Per task table, its :class:`Marks` (each task table is one family); {} without a baseline."""
    if compare is None or compare.baseline is None:
        return {}
    everything = everything if everything is not None else results
    baseline = find_baseline(everything, compare.baseline)
    return {t: table_marks(rs, compare, baseline, metric, everything) for t, rs in by_task(results).items()}


TEST_NAMES = {"t": "paired t-test", "randomization": "Fisher randomization test", "wilcoxon": "Wilcoxon signed-rank test"}


CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "no"}


def marker(c: Comparison | None) -> str:
    """▲ / ▼: significantly above / below the baseline after the correction; † significant with equal means (Wilcoxon)."""
    if c is None or not c.significant:
        return ""
    return "▲" if c.diff > 0 else "▼" if c.diff < 0 else "†"


def with_marks(text: str, key: Cell | None, marks: Marks | None, scale: float, digits: int) -> str:
    """``text`` (a formatted score) plus its marker and ``± half-width`` of its CI, if any."""
    if marks is None or key is None:
        return text
    text += marker(marks.comparisons.get(key))
    if key in marks.ci and marks.config.ci:
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
        f"±: half the width of the 95% percentile bootstrap CI of the mean over queries{x100} ({c.bootstrap} resamples, seed {c.stats_seed}); the CSV has both bounds."
        if c.ci else f"95% percentile bootstrap CIs of the means ({c.bootstrap} resamples, seed {c.stats_seed}): in the CSV (--no-ci leaves them out of this table).",
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


def ptext(p: float) -> str:
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def table1_key(cells: dict[str, Result], marks: dict[str, Marks]) -> tuple[Marks | None, Cell | None]:
    """A Table 1 cell from one dataset carries that dataset's marks (from its task table); a mean over several, none."""
    if len(cells) != 1:
        return None, None
    (r,) = cells.values()
    m = marks.get(r.task)
    return (m, m.sources.get(identity(r))) if m else (None, None)


TABLE1_NOTE = "▲ / ▼ and ± on a Table 1 cell that comes from one dataset are that dataset's, from its per-task table below (that table's family); a mean over several datasets carries none."
