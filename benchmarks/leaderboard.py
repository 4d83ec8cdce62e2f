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
