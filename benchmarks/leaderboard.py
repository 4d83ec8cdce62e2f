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
from retrieval.io import atomic_write, atomic_write_text

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


def display_names(results: list[Result]) -> list[str]:
    """Each result's row label: its model name, plus ``[<key>]`` where one name stands for several settings
    on the same dataset (two folders both called ``final``), so no table row silently hides another."""
    keys: dict[tuple[str, str, str, str], set[str]] = {}
    for r in results:
        keys.setdefault((r.model, r.encoder, r.dataset, r.split), set()).add(r.config_key)
    ambiguous = {(m, e) for (m, e, _, _), ks in keys.items() if len(ks) > 1}
    return [f"{r.model} [{r.config_key[:6]}]" if (r.model, r.encoder) in ambiguous else r.model for r in results]


def pivot(results: list[Result], metric: str = "ndcg@10") -> tuple[list[str], list[tuple[str, str]], dict[tuple[str, str, str], float]]:
    """Datasets (columns), (model, encoder) rows in first-seen order, and ``{(model, encoder, dataset/split): value}``."""
    cols: list[str] = []
    rows: list[tuple[str, str]] = []
    cell: dict[tuple[str, str, str], float] = {}
    created: dict[tuple[str, str, str], str] = {}
    for r, name in zip(results, display_names(results)):
        col = r.dataset if r.split == "test" else f"{r.dataset}/{r.split}"
        if col not in cols:
            cols.append(col)
        if (name, r.encoder) not in rows:
            rows.append((name, r.encoder))
        if metric in r.metrics and created.get((name, r.encoder, col), "") <= r.created_at:  # a re-run of the same settings: the newest wins
            cell[(name, r.encoder, col)] = r.metrics[metric]
            created[(name, r.encoder, col)] = r.created_at
    return sorted(cols, key=_natural), rows, cell


def _natural(name: str) -> tuple:
    """``passkey-512`` before ``passkey-1024``: split off a trailing number."""
    head, _, tail = name.rpartition("-")
    return (head, int(tail), "") if tail.isdigit() else (name, -1, "")


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
    full = [[name, r.encoder, r.dataset, r.split] + [f"{r.metrics[c]:.4f}" if c in r.metrics else "—" for c in mcols] + [f"{r.timings.get('total_s', 0):.1f}"] for r, name in zip(results, display_names(results))]
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


def paper_table(results: list[Result], metric: str = "ndcg@10") -> tuple[list[str], list[list[float | None]], dict[str, list[str]], list[list[bool]]]:
    """Rows = models, columns = Table 1; returns (row names, values, datasets averaged per column,
    and per cell whether the row lacks some of the column's datasets, so its mean is not comparable)."""
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
    values, partial = [], []
    for m in models:
        row, part = [], []
        for c in PAPER_COLUMNS:
            vals = cells.get((m, c))
            row.append(sum(vals.values()) / len(vals) if vals else None)
            part.append(bool(vals) and len(vals) < len(used[c]))
        values.append(row)
        partial.append(part)
    return models, values, used, partial


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
    models, values, used, partial = paper_table(results, metric)
    rows = [[m] + [_fmt(v) + ("*" if p else "") for v, p in zip(row, part)] for m, row, part in zip(models, values, partial)]
    out = [f"## Table 1 layout ({metric} x 100)\n", _md_table(["model"] + PAPER_COLUMNS, rows), ""]
    notes = [f"- {c}: mean over {', '.join(ds)}" for c, ds in used.items() if ds]
    if any(any(p) for p in partial):
        notes.append("- \\* the row has only some of the column's datasets: its mean is not comparable with full rows.")
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
    models, values, _, _ = paper_table(results, metric)
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

    models, values, _, partial = paper_table(results, metric)
    parts = [f"<h2>Table 1 layout ({html.escape(metric)} x 100)</h2>", table(["model"] + PAPER_COLUMNS, [[m] + [_fmt(v) + ("*" if p else "") for v, p in zip(row, part)] for m, row, part in zip(models, values, partial)])]
    for task, (cols, rows, cell) in breakdowns(results, metric).items():
        parts += [f"<h2>{html.escape(task)}</h2>", table(["model", "encoder"] + cols, [[m, e] + [_fmt(cell.get((m, e, c))) for c in cols] for m, e in rows])]
    style = "table{border-collapse:collapse;font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Leaderboard</title><style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def paper_png(results: list[Result], path: Path, metric: str = "ndcg@10") -> None:
    """Bar chart of ``metric``: one panel per task, one group per dataset, one bar per (model, encoder)."""
    import matplotlib  # lazy: plotting only for --layout paper; keeps `import` of the tables light

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    tasks = breakdowns(results, metric)
    names = list(dict.fromkeys(f"{r.model} ({r.encoder})" for r in results))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    widest = max((len(cols) for cols, _, _ in tasks.values()), default=1)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(min(16, 2 + 0.9 * widest), 3.2 * max(1, len(tasks))), squeeze=False)
    for ax, (task, (cols, rows, cell)) in zip(axes[:, 0], tasks.items()):
        width = 0.8 / max(1, len(rows))
        for i, (model, enc) in enumerate(rows):
            xs = [j + (i - (len(rows) - 1) / 2) * width for j, c in enumerate(cols) if (model, enc, c) in cell]
            ys = [cell[(model, enc, c)] for c in cols if (model, enc, c) in cell]
            ax.bar(xs, ys, width=width, color=colors[f"{model} ({enc})"], label=f"{model} ({enc})")
        ax.set_xticks(range(len(cols)), cols, fontsize=8, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric)
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in names]
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(3, len(names)), frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * ((len(names) - 1) // 3), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(Path(path), lambda f: f.write(buf.getvalue()))


def write_paper_leaderboard(folder: Path) -> list[Result]:
    """``paper.md``, ``paper.csv``, ``paper.html`` and ``paper.png`` in ``folder`` from its saved results."""
    folder = Path(folder)
    results = load_results(folder)
    atomic_write_text(folder / "paper.md", "# Leaderboard (ModernBERT Table 1 layout)\n\n" + paper_markdown(results))
    atomic_write_text(folder / "paper.csv", paper_csv(results))
    atomic_write_text(folder / "paper.html", paper_html(results))
    paper_png(results, folder / "paper.png")
    return results
