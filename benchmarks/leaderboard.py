"""Render saved results as leaderboard tables (Markdown and CSV). Never computes a score.

``leaderboard.csv``: one row per result, columns ``model,encoder,dataset,split,`` then every metric.
``leaderboard.md``: nDCG@10 pivot (rows = model/encoder, columns = datasets, plus the mean over
the datasets a row has all of), then the full per-result table.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from benchmarks.results import Result, load_results
from retrieval.store import atomic_write_text

KEY_COLUMNS = ["model", "encoder", "dataset", "split"]
HEADLINE_METRICS = ["ndcg@10", "recall@100", "mrr@10", "map@100"]


def metric_columns(results: list[Result]) -> list[str]:
    seen = {m for r in results for m in r.metrics}
    rest = sorted(seen - set(HEADLINE_METRICS), key=lambda m: (m.split("@")[0], int(m.split("@")[1]) if "@" in m and m.split("@")[1].isdigit() else 0))
    return [m for m in HEADLINE_METRICS if m in seen] + rest


def to_csv(results: list[Result]) -> str:
    cols = metric_columns(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(KEY_COLUMNS + cols + ["num_queries", "num_docs", "total_s"])
    for r in results:
        w.writerow([r.model, r.encoder, r.dataset, r.split] + [f"{r.metrics[c]:.5f}" if c in r.metrics else "" for c in cols] + [r.num_queries, r.num_docs, f"{r.timings.get('total_s', 0):.1f}"])
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pivot(results: list[Result], metric: str = "ndcg@10") -> tuple[list[str], list[tuple[str, str]], dict[tuple[str, str, str], float]]:
    """Datasets (columns), (model, encoder) rows in first-seen order, and ``{(model, encoder, dataset/split): value}``."""
    cols: list[str] = []
    rows: list[tuple[str, str]] = []
    cell: dict[tuple[str, str, str], float] = {}
    for r in results:
        col = r.dataset if r.split == "test" else f"{r.dataset}/{r.split}"
        if col not in cols:
            cols.append(col)
        if (r.model, r.encoder) not in rows:
            rows.append((r.model, r.encoder))
        if metric in r.metrics:
            cell[(r.model, r.encoder, col)] = r.metrics[metric]
    return cols, rows, cell


def to_markdown(results: list[Result], metric: str = "ndcg@10") -> str:
    if not results:
        return "_no results_\n"
    cols, rows, cell = pivot(results, metric)
    body = []
    for model, enc in rows:
        vals = [cell.get((model, enc, c)) for c in cols]
        mean = sum(vals) / len(vals) if all(v is not None for v in vals) else None
        body.append([model, enc] + [f"{v:.4f}" if v is not None else "—" for v in vals] + ([f"{mean:.4f}" if mean is not None else "—"] if len(cols) > 1 else []))
    header = ["model", "encoder"] + cols + (["mean"] if len(cols) > 1 else [])
    out = [f"## {metric}\n", _md_table(header, body), ""]
    mcols = metric_columns(results)
    full = [[r.model, r.encoder, r.dataset, r.split] + [f"{r.metrics[c]:.4f}" if c in r.metrics else "—" for c in mcols] + [f"{r.timings.get('total_s', 0):.1f}"] for r in results]
    out += ["## All metrics\n", _md_table(KEY_COLUMNS + mcols + ["time (s)"], full), ""]
    return "\n".join(out)


def write_leaderboard(folder: Path) -> list[Result]:
    """Read every result JSON in ``folder``; write ``leaderboard.md`` and ``leaderboard.csv`` there."""
    folder = Path(folder)
    results = load_results(folder)
    atomic_write_text(folder / "leaderboard.md", "# Leaderboard\n\n" + to_markdown(results))
    atomic_write_text(folder / "leaderboard.csv", to_csv(results))
    return results


# ---- the ModernBERT paper's Table 1 layout ------------------------------------------------------

PAPER_COLUMNS = ["BEIR-DPR", "MLDR-OOD", "MLDR-ID", "BEIR-ColBERT", "MLDR-ColBERT", "CSN", "SQA"]
CODE_COLUMNS = {"codesearchnet": "CSN", "stackoverflowqa": "SQA"}


def paper_column(r: Result) -> str | None:
    """Which Table 1 column a result feeds (None: only in the per-task breakdown).

    BEIR columns average the BEIR datasets; MLDR columns take datasets named ``mldr``
    (``MLDR-ID`` when the result says the model was trained in domain); BM25 fills the DPR
    (single-vector) columns as the lexical baseline.
    """
    single = r.encoder in ("dpr", "bm25")
    if r.task in ("beir", "mteb") and not r.dataset.lower().startswith("mldr"):
        return "BEIR-DPR" if single else "BEIR-ColBERT" if r.encoder == "colbert" else None
    if r.dataset.lower().startswith("mldr"):
        if r.encoder == "colbert":
            return "MLDR-ColBERT"
        return "MLDR-ID" if r.provenance.get("in_domain") else "MLDR-OOD"
    return CODE_COLUMNS.get(r.dataset.lower()) if single else None


def paper_table(results: list[Result], metric: str = "ndcg@10") -> tuple[list[str], list[list[float | None]], dict[str, list[str]]]:
    """Rows = models, columns = Table 1; returns (row names, values, datasets averaged per column)."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    used: dict[str, list[str]] = {c: [] for c in PAPER_COLUMNS}
    models: list[str] = []
    for r in results:
        col = paper_column(r)
        if col is None or metric not in r.metrics:
            continue
        if r.model not in models:
            models.append(r.model)
        cells.setdefault((r.model, col), {})[r.dataset] = r.metrics[metric]
        if r.dataset not in used[col]:
            used[col].append(r.dataset)
    values = []
    for m in models:
        row = []
        for c in PAPER_COLUMNS:
            vals = cells.get((m, c))
            row.append(sum(vals.values()) / len(vals) if vals else None)
        values.append(row)
    return models, values, used


def breakdowns(results: list[Result], metric: str = "ndcg@10") -> dict[str, tuple[list[str], list[tuple[str, str]], dict]]:
    """Per task: (dataset columns, (model, encoder) rows, cells) — see :func:`pivot`."""
    tasks: dict[str, list[Result]] = {}
    for r in results:
        tasks.setdefault(r.task, []).append(r)
    return {t: pivot(rs, metric) for t, rs in tasks.items()}


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def paper_markdown(results: list[Result], metric: str = "ndcg@10") -> str:
    """Table 1 (scores x100, as the paper prints them), then one breakdown per task with its mean."""
    models, values, used = paper_table(results, metric)
    out = [f"## Table 1 layout ({metric} x 100)\n", _md_table(["model"] + PAPER_COLUMNS, [[m] + [_fmt(v) for v in row] for m, row in zip(models, values)]), ""]
    notes = [f"- {c}: mean over {', '.join(ds)}" for c, ds in used.items() if ds]
    out += notes + ["- BM25 rows fill the single-vector (DPR) columns as the lexical baseline.", ""]
    for task, (cols, rows, cell) in breakdowns(results, metric).items():
        body = []
        for model, enc in rows:
            vals = [cell.get((model, enc, c)) for c in cols]
            got = [v for v in vals if v is not None]
            body.append([model, enc] + [_fmt(v) for v in vals] + [_fmt(sum(got) / len(got)) if len(got) == len(vals) else "—"])
        out += [f"## {task} ({metric} x 100)\n", _md_table(["model", "encoder"] + cols + ["mean"], body), ""]
    return "\n".join(out)


def paper_csv(results: list[Result], metric: str = "ndcg@10") -> str:
    models, values, _ = paper_table(results, metric)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model"] + PAPER_COLUMNS)
    for m, row in zip(models, values):
        w.writerow([m] + ["" if v is None else f"{v:.5f}" for v in row])
    return buf.getvalue()


def paper_html(results: list[Result], metric: str = "ndcg@10") -> str:
    import html

    def table(header, rows):
        th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table>\n<thead><tr>{th}</tr></thead>\n<tbody>{trs}</tbody>\n</table>"

    models, values, _ = paper_table(results, metric)
    parts = [f"<h2>Table 1 layout ({html.escape(metric)} x 100)</h2>", table(["model"] + PAPER_COLUMNS, [[m] + [_fmt(v) for v in row] for m, row in zip(models, values)])]
    for task, (cols, rows, cell) in breakdowns(results, metric).items():
        parts += [f"<h2>{html.escape(task)}</h2>", table(["model", "encoder"] + cols, [[m, e] + [_fmt(cell.get((m, e, c))) for c in cols] for m, e in rows])]
    style = "table{border-collapse:collapse;font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Leaderboard</title><style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def paper_png(results: list[Result], path: Path, metric: str = "ndcg@10") -> None:
    """Grouped bar chart: one group per (task, dataset), one bar per (model, encoder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[str] = []
    series: dict[str, dict[str, float]] = {}
    for r in results:
        if metric not in r.metrics:
            continue
        g = f"{r.task}\n{r.dataset}"
        if g not in groups:
            groups.append(g)
        series.setdefault(f"{r.model} ({r.encoder})", {})[g] = r.metrics[metric]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(series)) / 2), 4.5))
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + (i - (len(series) - 1) / 2) * width for j, g in enumerate(groups) if g in vals]
        ax.bar(xs, [vals[g] for g in groups if g in vals], width=width, label=name)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.set_title(f"{metric} per model and dataset")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    from retrieval.store import _atomic_write

    _atomic_write(Path(path), lambda f: f.write(buf.getvalue()))


def write_paper_leaderboard(folder: Path) -> list[Result]:
    """``paper.md``, ``paper.csv``, ``paper.html`` and ``paper.png`` in ``folder`` from its saved results."""
    folder = Path(folder)
    results = load_results(folder)
    atomic_write_text(folder / "paper.md", "# Leaderboard (ModernBERT Table 1 layout)\n\n" + paper_markdown(results))
    atomic_write_text(folder / "paper.csv", paper_csv(results))
    atomic_write_text(folder / "paper.html", paper_html(results))
    paper_png(results, folder / "paper.png")
    return results
