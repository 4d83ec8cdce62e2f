"""HTML: the paper layout's page."""

from __future__ import annotations

import html

from benchmarks.cells import EVAL_SPLIT
from benchmarks.marks import TABLE1_NOTE, Marks, legend, ptext, table1_key, task_marks, with_marks
from benchmarks.render.markdown import fmt100, table1_texts
from benchmarks.results import Result
from benchmarks.spec import CompareConfig
from benchmarks.table import PAPER_COLUMNS, Cell, breakdowns, paper_cells

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
            tips.append(f"vs baseline {100 * c.diff:+.2f} [{100 * c.diff_ci[0]:+.2f}, {100 * c.diff_ci[1]:+.2f}], p {ptext(c.p)}, adjusted {ptext(c.p_adjusted)}")
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
    models, texts, _, _ = table1_texts(results, metric, marks)
    _, cells, _ = paper_cells(results, metric)
    t1 = []
    for m, row in zip(models, texts):
        if marks:
            keys = [table1_key(cells.get((m, c), {}), marks) for c in PAPER_COLUMNS]  # (marks, cell) per column
            row = [_html_cell(t, key, mk) for t, (mk, key) in zip(row, keys)]
        t1.append([m] + row)
    parts = [f"<h2>Table 1 layout ({html.escape(metric)} x 100, split {EVAL_SPLIT})</h2>", table(["model"] + PAPER_COLUMNS, t1)] + ([notes([TABLE1_NOTE])] if marks else [])
    for task, (cols, rows, cell) in breakdowns(results, metric).items():
        mk = marks.get(task)
        body = [[m, e] + [_html_cell(with_marks(fmt100(cell.get((m, e, c))), (m, e, c) if (m, e, c) in cell else None, mk, 100, 1), (m, e, c), mk) if mk else fmt100(cell.get((m, e, c))) for c in cols] for m, e in rows]
        parts += [f"<h2>{html.escape(task)}</h2>", table(["model", "encoder"] + cols, body)] + ([notes(legend(mk, scale=100))] if mk else [])
    style = "table{border-collapse:collapse;font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Leaderboard</title><style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
