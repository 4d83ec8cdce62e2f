"""Figures of saved results: the numbers are computed by pure functions, then drawn (matplotlib, Agg).

* :func:`sorted_differences` -> :func:`draw_differences`: one system against the baseline on one
  dataset, the per-query differences (system - baseline) sorted, with the mean difference and
  its paired bootstrap 95% CI in the title.
* :func:`length_curves` -> a :class:`LengthPanel` of :func:`draw_paper`: a metric against document
  length for the generated long-document suites (passkey, needle, concat; 256..8192 tokens,
  log2 axis), one line per model and suite, the bootstrap 95% CI of each mean as a band. This is
  the figure long-context papers draw (LongEmbed, Zhu et al. 2024, fig. 3).
* :func:`draw_paper`: the paper layout's figure, a length panel for the long-document suites and
  one bar group per dataset for every other task.

Nothing here reads result files or decides which results to plot; :mod:`benchmarks.leaderboard`
passes plain values. Every resampling is seeded, so the same inputs draw the same picture.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.longdoc import parse_name
from benchmarks.significance import bootstrap_ci, paired_bootstrap_ci, paired_scores
from retrieval.io import atomic_write

SUITE_STYLES = {"passkey": ("-", "o"), "needle": ("--", "s"), "concat": (":", "^")}  # line style, marker per suite


# ---------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class Differences:
    """Per-query differences of one system against the baseline on one dataset, ascending."""

    system: str
    baseline: str
    dataset: str
    metric: str
    qids: tuple[str, ...]  # (Q,) in the order of diffs; ties by qid
    diffs: tuple[float, ...]  # (Q,) system - baseline, ascending
    mean: float  # mean of diffs = mean(system) - mean(baseline)
    ci: tuple[float, float]  # paired bootstrap 95% CI of the mean difference


def sorted_differences(system: Mapping[str, float], baseline: Mapping[str, float], *, names: tuple[str, str] = ("system", "baseline"), dataset: str = "", metric: str = "ndcg@10", n: int = 1_000, seed: int = 0) -> Differences:
    """``system`` and ``baseline`` ({qid: score}, the same qids) -> their differences, sorted ascending.

    A different query set is a ValueError naming both (``names``) and the counts. The CI is
    :func:`benchmarks.significance.paired_bootstrap_ci` (``n`` resamples, ``seed``).

    >>> d = sorted_differences({"q1": 0.5, "q2": 1.0, "q3": 0.0}, {"q1": 0.5, "q2": 0.25, "q3": 0.25}, n=200)
    >>> d.qids, d.diffs, round(d.mean, 12)
    (('q3', 'q1', 'q2'), (-0.25, 0.0, 0.75), 0.166666666667)
    """
    sys_name, base_name = names
    qids, a, b = paired_scores({sys_name: system, base_name: baseline}, sys_name, base_name)
    d = a - b  # (Q,)
    order = sorted(range(len(qids)), key=lambda i: (d[i], qids[i]))
    return Differences(
        system=sys_name,
        baseline=base_name,
        dataset=dataset,
        metric=metric,
        qids=tuple(qids[i] for i in order),
        diffs=tuple(float(d[i]) for i in order),
        mean=float(a.mean() - b.mean()),
        ci=paired_bootstrap_ci(a, b, n=n, seed=seed),
    )


@dataclass(frozen=True)
class LengthCurve:
    """One model on one long-document suite: the metric at each document length."""

    label: str  # the model's row label, e.g. "BM25 (bm25)"
    suite: str  # passkey | needle | concat
    lengths: tuple[int, ...]  # ascending, in reference tokens
    means: tuple[float, ...]  # the metric per length
    lo: tuple[float, ...]  # bootstrap 95% CI per length; NaN where the result has no per-query scores
    hi: tuple[float, ...]


def length_curves(cells: Mapping[tuple[str, str], tuple[float, Sequence[float] | None]], *, n: int = 1_000, seed: int = 0) -> list[LengthCurve]:
    """``{(label, dataset): (mean, per-query scores or None)}`` -> one curve per (label, suite), lengths ascending.

    Datasets that are not generated suites (``passkey-512``, ...; see
    :func:`benchmarks.longdoc.parse_name`) are left out. Curves come in first-seen label order,
    then passkey, needle, concat. Shapes: scores (Q,) per dataset, Q may differ between lengths.

    >>> (c,) = length_curves({("BM25", "passkey-1024"): (0.5, [0.0, 1.0]), ("BM25", "passkey-256"): (1.0, [1.0, 1.0]), ("BM25", "mldr"): (0.3, None)})
    >>> c.suite, c.lengths, c.means, c.lo, c.hi
    ('passkey', (256, 1024), (1.0, 0.5), (1.0, 0.0), (1.0, 1.0))
    """
    points: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for (label, dataset), (mean, scores) in cells.items():
        spec = parse_name(dataset)
        if spec is None:
            continue
        lo, hi = bootstrap_ci(scores, n=n, seed=seed) if scores is not None else (math.nan, math.nan)
        points.setdefault((label, spec.suite), []).append((spec.length, float(mean), lo, hi))
    labels = list(dict.fromkeys(label for label, _ in points))
    curves = []
    for label in labels:
        for suite in SUITE_STYLES:
            pts = sorted(points.get((label, suite), []))
            if pts:
                lengths, means, lo, hi = zip(*pts)
                curves.append(LengthCurve(label, suite, lengths, means, lo, hi))
    return curves


# ---------------------------------------------------------------- drawing


def _pyplot():
    import matplotlib  # lazy: only drawing needs it; keeps importing the tables light

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(Path(path), lambda f: f.write(buf.getvalue()))


def draw_differences(d: Differences, path: Path) -> None:
    """Bars of ``d.diffs`` (one per query, sorted), a zero line, the mean difference and its CI in the title."""
    plt = _pyplot()
    x = np.arange(len(d.diffs))  # (Q,)
    y = np.asarray(d.diffs)  # (Q,)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(x, y, width=1.0, color=np.where(y > 0, "#2a9d4b", np.where(y < 0, "#c0392b", "#999999")), linewidth=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhline(d.mean, color="#1f4e9c", linewidth=1.0, linestyle="--", label=f"mean {d.mean:+.4f}")
    ax.set_xlim(-0.5, len(y) - 0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel(f"queries, sorted by difference (Q = {len(y)}; {int((y > 0).sum())} better, {int((y < 0).sum())} worse, {int((y == 0).sum())} tied)", fontsize=8)
    ax.set_ylabel(f"{d.metric} difference", fontsize=8)
    ax.set_title(f"{d.system} − {d.baseline} on {d.dataset}: mean {d.mean:+.4f}, 95% CI [{d.ci[0]:+.4f}, {d.ci[1]:+.4f}]", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


@dataclass(frozen=True)
class BarPanel:
    """One bar group per dataset (column), one bar per row: see ``benchmarks.leaderboard.pivot``."""

    title: str
    cols: list[str]
    rows: list[tuple[str, str]]  # (label, encoder)
    cell: dict[tuple[str, str, str], float]  # (label, encoder, column) -> value


@dataclass(frozen=True)
class LengthPanel:
    title: str
    curves: list[LengthCurve]


def draw_paper(panels: Sequence[BarPanel | LengthPanel], path: Path, metric: str = "ndcg@10") -> None:
    """The paper layout's figure: one panel per entry, a shared colour per model (``label (encoder)``)."""
    plt = _pyplot()
    names = list(dict.fromkeys([f"{m} ({e})" for p in panels if isinstance(p, BarPanel) for m, e in p.rows] + [c.label for p in panels if isinstance(p, LengthPanel) for c in p.curves]))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    widest = max([len(p.cols) for p in panels if isinstance(p, BarPanel)] + [8], default=8)
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(min(16, 2 + 0.9 * widest), 3.2 * max(1, len(panels))), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        if isinstance(panel, LengthPanel):
            _draw_lengths(ax, panel, colors, metric)
        else:
            _draw_bars(ax, panel, colors, metric)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in names]
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(3, max(1, len(names))), frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.02 * ((len(names) - 1) // 3), 1, 1))
    _save(fig, path)


def _draw_bars(ax, p: BarPanel, colors, metric: str) -> None:
    width = 0.8 / max(1, len(p.rows))
    for i, (model, enc) in enumerate(p.rows):
        xs = [j + (i - (len(p.rows) - 1) / 2) * width for j, c in enumerate(p.cols) if (model, enc, c) in p.cell]
        ys = [p.cell[(model, enc, c)] for c in p.cols if (model, enc, c) in p.cell]
        ax.bar(xs, ys, width=width, color=colors[f"{model} ({enc})"])
    ax.set_xticks(range(len(p.cols)), p.cols, fontsize=8, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(p.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _draw_lengths(ax, p: LengthPanel, colors, metric: str) -> None:
    plt = _pyplot()
    for c in p.curves:
        style, mark = SUITE_STYLES[c.suite]
        ax.plot(c.lengths, c.means, linestyle=style, marker=mark, markersize=4, color=colors[c.label], linewidth=1.4)
        lo, hi = np.asarray(c.lo), np.asarray(c.hi)
        if np.isfinite(lo).any():
            ax.fill_between(c.lengths, lo, hi, color=colors[c.label], alpha=0.15, linewidth=0)
    lengths = sorted({n for c in p.curves for n in c.lengths})
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths], fontsize=8)
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("document length (reference tokens)", fontsize=8)
    ax.set_ylabel(metric)
    banded = any(np.isfinite(np.asarray(c.lo)).any() for c in p.curves)
    ax.set_title(p.title + (": bands are bootstrap 95% CIs" if banded else ": no CI bands (results without per-query scores)"), fontsize=10)
    ax.grid(alpha=0.3)
    suites = list(dict.fromkeys(c.suite for c in p.curves))
    ax.legend([plt.Line2D([], [], color="black", linestyle=SUITE_STYLES[s][0], marker=SUITE_STYLES[s][1], markersize=4) for s in suites], suites, fontsize=8, loc="lower left", frameon=False)
