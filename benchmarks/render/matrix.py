"""The reproduction matrix, rendered: one row per entry (✔ inside the tolerance, ✘ outside or on error, skip, n/a),
as ``matrix.json`` (typed rows), ``matrix.md`` and ``matrix.html``. Rows are a pure function of the entries and what running them gave."""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.entries import Entry
from retrieval.io import atomic_write_text

Status = Literal["pass", "fail", "skip", "n/a"]


MARK = {"pass": "✔", "fail": "✘", "skip": "skip", "n/a": "n/a"}


@dataclass(frozen=True)
class Outcome:
    """What running one entry gave: a measured value, or why there is none."""

    measured: float | None = None
    reason: str = ""  # why skipped or failed; "" when measured
    failed: bool = False  # True: the entry should have run and did not (an error); False with no value: skipped
    results: tuple[str, ...] = ()  # result file stems (in out/results) the value comes from


@dataclass(frozen=True)
class Row:
    name: str
    metric: str
    expected: float
    tolerance: float
    measured: float | None
    delta: float | None
    status: Status
    reason: str
    source: str
    cost: str
    results: tuple[str, ...] = ()
    source_kind: str = "published"
    alternatives: tuple[str, ...] = ()  # "name value (|Δ| gap)" of each alternative the tolerance rejects


def judge(expected: float, tolerance: float, measured: float) -> Status:
    """``"pass"`` when ``|measured - expected| <= tolerance`` (to 1e-12, so a figure at the edge passes), else ``"fail"``.

    >>> judge(0.6874, 0.002, 0.6863), judge(0.6451, 0.005, 0.6351)
    ('pass', 'fail')
    """
    return "pass" if abs(measured - expected) <= tolerance + 1e-12 else "fail"


def matrix_rows(entries: list[Entry], outcomes: Mapping[str, Outcome]) -> list[Row]:
    """One row per entry: ✔ inside the tolerance, ✘ outside or on error, skip (missing input, cost) or n/a, with the reason."""
    rows = []
    for e in entries:
        o = outcomes[e.name]
        if o.measured is not None:
            status: Status = judge(e.expected, e.tolerance, o.measured)
        else:
            status = "fail" if o.failed else "n/a" if e.not_applicable else "skip"
        delta = None if o.measured is None else o.measured - e.expected
        reason = o.reason or (f"outside ±{e.tolerance:g}" if status == "fail" else "")
        alts = tuple(f"{a.label()} (|Δ| {abs(a.value - e.expected):.4f})" for a in e.alternatives)
        rows.append(Row(e.name, e.metric, e.expected, e.tolerance, o.measured, delta, status, reason, e.source, e.cost, o.results, e.source_kind, alts))
    return rows


def _num(v: float | None, signed: bool = False) -> str:
    return "—" if v is None else f"{v:+.4f}" if signed else f"{v:.4f}"


def summary(rows: list[Row]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in MARK}
    return ", ".join(f"{n} {MARK[s]}" for s, n in counts.items() if n) or "no entries"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


SOURCE_NOTE = ("source: published = a figure someone else published (agreement with it is evidence); own = an earlier run of this "
               "project (a ✔ says we still get what we got). alternative: the number the figure is told apart from; every tolerance is below its gap.")


def to_markdown(rows: list[Row]) -> str:
    header = ["name", "metric", "expected ± tol", "measured", "delta", "status", "source", "alternative (|Δ| to expected)", "cost", "reason / reference"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        why = f"{r.reason} — source: {r.source}" if r.reason else r.source
        cells = [r.name, r.metric, f"{r.expected:.4f} ± {r.tolerance:.4f}", _num(r.measured), _num(r.delta, True), MARK[r.status], r.source_kind,
                 "; ".join(r.alternatives) or "—", r.cost, why]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + f"\n\n{summary(rows)}\n\n{SOURCE_NOTE}\n"


def to_html(rows: list[Row]) -> str:
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
             ".pass{background:#dfd}.fail{background:#fdd}.skip,.n\\/a{color:#666}")
    head = "".join(f"<th>{h}</th>" for h in ["name", "metric", "expected ± tol", "measured", "delta", "status", "source", "alternative (|Δ| to expected)", "cost", "reason", "reference"])
    body = "".join(
        f"<tr class='{html.escape(r.status)}'>" + "".join(f"<td>{html.escape(c)}</td>" for c in [
            r.name, r.metric, f"{r.expected:.4f} ± {r.tolerance:.4f}", _num(r.measured), _num(r.delta, True), MARK[r.status], r.source_kind,
            "; ".join(r.alternatives) or "—", r.cost, r.reason, r.source]) + "</tr>"
        for r in rows)
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Reproduction matrix</title><style>{style}</style></head><body>\n"
            f"<h2>Reproduction matrix</h2>\n<table><tr>{head}</tr>{body}</table>\n<p>{html.escape(summary(rows))}</p>\n<p>{html.escape(SOURCE_NOTE)}</p>\n</body></html>\n")


# The matrix files, by name: write_matrix writes exactly these (the invariant suite checks each).
OUTPUTS: dict[str, Callable[[list[Row]], str]] = {
    "matrix.json": lambda rows: json.dumps([dataclasses.asdict(r) for r in rows], indent=2, ensure_ascii=False) + "\n",
    "matrix.md": lambda rows: "# Reproduction matrix\n\n" + to_markdown(rows),
    "matrix.html": lambda rows: to_html(rows),
}


def write_matrix(folder: Path, rows: list[Row]) -> None:
    """Each of :data:`OUTPUTS` (``matrix.json`` with the typed rows, ``matrix.md``, ``matrix.html``) in ``folder``, each written atomically."""
    folder = Path(folder)
    for name, render in OUTPUTS.items():
        atomic_write_text(folder / name, render(rows))


def exit_code(rows: list[Row]) -> int:
    """1 when any row is ✘, else 0 (skips and n/a do not fail a run)."""
    return int(any(r.status == "fail" for r in rows))
