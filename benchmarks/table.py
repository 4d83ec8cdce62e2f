"""The table model every format renders: which result each cell shows, as rows and columns of labels.

A leaderboard table is a pivot of one metric: rows are (label, encoder), columns are datasets with
their split (``scifact``, ``scifact/train``), and a cell is the result :func:`benchmarks.cells.choose`
picks for it (:func:`picked`; the values alone: :func:`pivot`). The paper layout adds the ModernBERT
paper's Table 1 (:func:`paper_table`: means over the datasets each column averages, test split only)
and one pivot per task (:func:`breakdowns`). Nothing here renders or tests anything.
"""

from __future__ import annotations

from benchmarks import cells
from benchmarks.cells import EVAL_SPLIT, choose
from benchmarks.results import Result

KEY_COLUMNS = ["model", "encoder", "dataset", "split"]


HEADLINE_METRICS = ["ndcg@10", "recall@100", "mrr@10", "map@100"]


Cell = tuple[str, str, str]  # (row label, encoder, column): one score of a pivot table


def metric_columns(results: list[Result]) -> list[str]:
    seen = {m for r in results for m in r.metrics}
    rest = sorted(seen - set(HEADLINE_METRICS), key=lambda m: (m.split("@")[0], int(m.split("@")[1]) if "@" in m and m.split("@")[1].isdigit() else 0))
    return [m for m in HEADLINE_METRICS if m in seen] + rest


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


def split_tables(cols: list[str]) -> list[tuple[str, list[str]]]:
    """Columns grouped by split, the evaluation split first: a mean is never taken across splits."""
    groups: dict[str, list[str]] = {}
    for c in cols:
        groups.setdefault(split_of(c), []).append(c)
    return sorted(groups.items(), key=lambda kv: (kv[0] != EVAL_SPLIT, kv[0]))


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


def paper_cells(results: list[Result], metric: str, everything: list[Result] | None = None) -> tuple[list[str], dict[tuple[str, str], dict[str, Result]], dict[str, list[str]]]:
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
    models, cells, used = paper_cells(results, metric, everything)
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


def by_task(results: list[Result]) -> dict[str, list[Result]]:
    tasks: dict[str, list[Result]] = {}
    for r in results:
        tasks.setdefault(r.task, []).append(r)
    return tasks


def breakdowns(results: list[Result], metric: str = "ndcg@10", everything: list[Result] | None = None) -> dict[str, tuple[list[str], list[tuple[str, str]], dict]]:
    """Per task: (dataset columns, (model, encoder) rows, cells) — see :func:`pivot`; rows labelled over ``everything``."""
    return {t: pivot(rs, metric, everything if everything is not None else results) for t, rs in by_task(results).items()}
