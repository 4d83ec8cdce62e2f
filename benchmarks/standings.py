"""Rank intervals and tiers of one table: which rows are really apart, per dataset and for the mean over datasets.

The statistics are :mod:`benchmarks.ranks`' (paired bootstrap over queries; tiers by the configured
test and correction), applied to the cells :func:`benchmarks.table.picked` chooses:

* per column (a dataset and split): every row with per-query scores there, on the same queries;
* per split, for the mean over datasets: the rows with per-query scores on every column of a common
  set of columns (the largest set that at least two rows share), resampled within each dataset.

Rows without per-query scores (results written before they were recorded) get no interval, and
:attr:`Ranks.unranked` says which. The same results and settings give the same numbers
(``CompareConfig.bootstrap``, ``stats_seed``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from benchmarks.marks import TEST_NAMES, CORRECTION_NAMES, per_query_scores
from benchmarks.ranks import Standing, standings, standings_stratified
from benchmarks.results import Result
from benchmarks.spec import CompareConfig
from benchmarks.cells import EVAL_SPLIT
from benchmarks.table import PAPER_COLUMNS, paper_cells, picked, split_tables

Row = tuple[str, str]  # (label, encoder)


@dataclass(frozen=True)
class MeanStandings:
    columns: tuple[str, ...]  # the datasets (columns) the mean is over
    standings: dict[Row, Standing]


@dataclass(frozen=True)
class Ranks:
    config: CompareConfig
    metric: str
    columns: dict[str, dict[Row, Standing]]  # column label -> its rows' standings
    means: dict[str, MeanStandings]  # split -> the standings of the mean over its datasets
    unranked: tuple[str, ...]  # "label (encoder) on column": no per-query scores there (or other queries), so no interval

    def any(self) -> bool:
        return bool(self.columns or self.means)


def _key(row: Row) -> str:
    return f"{row[0]} ({row[1]})"


def table_ranks(results: list[Result], config: CompareConfig | None = None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> Ranks:
    """The rank intervals and tiers of the pivot of ``results`` (module docstring)."""
    config = config or CompareConfig()
    cols, rows, cell = picked(results, metric, everything)
    scores: dict[str, dict[Row, dict[str, float]]] = {}
    unranked = []
    for col in cols:
        have = {key[:2]: s for key, r in cell.items() if key[2] == col and (s := per_query_scores(r, metric)) is not None}
        groups = Counter(frozenset(s) for s in have.values())
        if not groups:
            unranked += [f"{_key(key[:2])} on {col}" for key in cell if key[2] == col]
            continue
        common = max(groups, key=lambda g: (groups[g], len(g)))  # the query set most rows share
        scores[col] = {row: s for row, s in have.items() if frozenset(s) == common}
        unranked += [f"{_key(key[:2])} on {col}" for key in cell if key[2] == col and key[:2] not in scores[col]]
    columns = {}
    for col, per_row in scores.items():
        if len(per_row) >= 2:
            found = standings({_key(r): s for r, s in per_row.items()}, test=config.test, correction=config.correction, alpha=config.alpha,
                              n=config.bootstrap, seed=config.stats_seed, permutations=config.permutations)
            by_key = {_key(r): r for r in per_row}
            columns[col] = {by_key[st.system]: st for st in found}
    means = {}
    for split, scols in split_tables(cols):
        chosen = mean_columns({c: set(scores.get(c, {})) for c in scols})
        if chosen is None:
            continue
        mcols, mrows = chosen
        by_dataset = {c: {_key(r): scores[c][r] for r in mrows} for c in mcols}
        found = standings_stratified(by_dataset, correction=config.correction, alpha=config.alpha, n=config.bootstrap, seed=config.stats_seed)
        by_key = {_key(r): r for r in mrows}
        means[split] = MeanStandings(tuple(mcols), {by_key[st.system]: st for st in found})
    return Ranks(config, metric, columns, means, tuple(unranked))


def mean_columns(rows_of: dict[str, set[Row]]) -> tuple[list[str], list[Row]] | None:
    """The columns a mean over datasets is taken over, and its rows: start from every column with a ranked row, drop the
    column with the fewest rows until at least two rows have all of them; None if fewer than two columns remain.

    >>> mean_columns({"a": {("x", "d"), ("y", "d")}, "b": {("x", "d"), ("y", "d")}, "c": {("x", "d")}})
    (['a', 'b'], [('x', 'd'), ('y', 'd')])
    """
    cols = [c for c, rows in rows_of.items() if rows]
    while len(cols) >= 2:
        common = set.intersection(*(rows_of[c] for c in cols))
        if len(common) >= 2:
            return cols, sorted(common)
        cols.remove(min(cols, key=lambda c: (len(rows_of[c]), c)))
    return None


def rank_text(st: Standing | None, star: str = "★") -> str:
    """``1–3 ★`` (tier 1, the best tier), ``2–4 (tier 2)``, ``—`` without an interval."""
    if st is None:
        return "—"
    lo, hi = st.interval
    span = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return f"{span} {star}" if st.tier == 1 else f"{span} (tier {st.tier})"


def ranks_legend(ranks: Ranks) -> list[str]:
    """What the rank cells mean: the bootstrap, the tiers' test and correction, the mean's datasets, and who has no interval."""
    c = ranks.config
    test = TEST_NAMES[c.test] + (f" ({c.permutations} sign-flip permutations)" if c.test == "randomization" else "")
    lines = [
        f"Rank: the 95% interval of the row's rank by mean {ranks.metric} (1 = best; equal means share a rank) over {c.bootstrap} paired bootstrap "
        f"resamples of the queries (seed {c.stats_seed}); for a mean over datasets, resampled within each dataset.",
        f"★ tier 1: the best row and every row whose difference from it is not significant: two-sided {test} per dataset, a stratified "
        f"paired bootstrap for the mean, {CORRECTION_NAMES[c.correction]} correction over the comparisons with the best, alpha {c.alpha:g}; "
        "tier k: the same among the rows below tier k - 1.",
    ]
    for split, m in ranks.means.items():
        lines.append(f"Mean rank{'' if split == EVAL_SPLIT else f' ({split})'} over {', '.join(m.columns)}.")
    if ranks.unranked:
        lines.append("No rank interval (no per-query scores in the result, or other queries than the rest): " + ", ".join(ranks.unranked) + ".")
    return lines


def table1_ranks(results: list[Result], config: CompareConfig | None = None, metric: str = "ndcg@10", everything: list[Result] | None = None) -> dict[str, MeanStandings]:
    """Per Table 1 column, the standings of its rows: over the column's datasets that every ranked row has per-query
    scores on (stratified; one dataset: :func:`benchmarks.ranks.standings`)."""
    config = config or CompareConfig()
    models, cells, _ = paper_cells(results, metric, everything)
    out = {}
    for col in PAPER_COLUMNS:
        have: dict[str, dict[str, dict[str, float]]] = {}  # dataset -> row -> scores
        for m in models:
            for dataset, r in cells.get((m, col), {}).items():
                s = per_query_scores(r, metric)
                if s is not None:
                    have.setdefault(dataset, {})[m] = s
        chosen = mean_columns({d: {(m, "") for m in rows} for d, rows in have.items()}) if len(have) > 1 else \
            ((list(have), [(m, "") for m in next(iter(have.values()))]) if len(have) == 1 and len(next(iter(have.values()))) >= 2 else None)
        if chosen is None:
            continue
        datasets, rows = chosen
        names = [m for m, _ in rows]
        if any(len({frozenset(have[d][m]) for m in names}) > 1 for d in datasets):
            continue  # not the same queries: no paired ranks
        if len(datasets) == 1:
            found = standings({m: have[datasets[0]][m] for m in names}, test=config.test, correction=config.correction, alpha=config.alpha,
                              n=config.bootstrap, seed=config.stats_seed, permutations=config.permutations)
        else:
            found = standings_stratified({d: {m: have[d][m] for m in names} for d in datasets}, correction=config.correction, alpha=config.alpha,
                                         n=config.bootstrap, seed=config.stats_seed)
        out[col] = MeanStandings(tuple(datasets), {(st.system, ""): st for st in found})
    return out
