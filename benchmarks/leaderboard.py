"""Render saved results as leaderboard files: the registries of outputs, the writers, and the figures. Never computes a score.

``leaderboard.{md,csv,tex,html}``: the pivot of nDCG@10 per split (rows = model/encoder/settings, columns =
datasets, with the mean over the datasets a row has all of) and its rank intervals and tiers; the
Markdown and CSV then every metric of every cell; the HTML page is interactive (sort, filter,
provenance, per-query differences). ``paper.{md,csv,tex,html,png}``: the ModernBERT paper's Table 1
columns (test split), then one table per task.
The table model is :mod:`benchmarks.table` (cells chosen by :mod:`benchmarks.cells`); each format is
a module of :mod:`benchmarks.render`; significance against a baseline is :mod:`benchmarks.marks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.longdoc import parse_name
from benchmarks.marks import marks_for, per_query_scores
from benchmarks.plots import BarPanel, Differences, LengthPanel, draw_differences, draw_paper, length_curves, sorted_differences
from benchmarks.render.csvfile import paper_csv, to_csv
from benchmarks.render.latex import leaderboard_tex, paper_tex
from benchmarks.render.markdown import paper_markdown, to_markdown
from benchmarks.render.page import leaderboard_html, paper_html
from benchmarks.results import Result, load_results, slug
from benchmarks.spec import CompareConfig
from benchmarks.table import by_task, picked
from retrieval.io import atomic_write_text

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


def paper_panels(results: list[Result], metric: str = "ndcg@10", compare: CompareConfig | None = None) -> list[BarPanel | LengthPanel]:
    """The paper figure's panels, per task: ``metric`` against document length for the generated
    long-document suites (with bootstrap CI bands where results have per-query scores), bars per
    dataset for the rest."""
    cfg = compare or CompareConfig()  # the bootstrap's resamples and seed, with or without a baseline
    panels: list[BarPanel | LengthPanel] = []
    for task, rs in by_task(results).items():
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


Render = Callable[[list[Result], "CompareConfig | None"], str]


# Every table file the default layout writes, by name: write_leaderboard writes exactly these, and the invariant
# suite (tests/invariants) checks each (re-rendered byte for byte, cells unmoved by unrelated results).
OUTPUTS: dict[str, Render] = {
    "leaderboard.md": lambda rs, c: "# Leaderboard\n\n" + to_markdown(rs, compare=c),
    "leaderboard.csv": lambda rs, c: to_csv(rs, c),
    "leaderboard.tex": lambda rs, c: leaderboard_tex(rs, c),
    "leaderboard.html": lambda rs, c: leaderboard_html(rs, c),
}


def write_leaderboard(folder: Path, compare: CompareConfig | None = None) -> list[Result]:
    """Read every result JSON in ``folder``; write each of :data:`OUTPUTS` (``leaderboard.md``, ``leaderboard.csv``) there."""
    folder = Path(folder)
    results = load_results(folder)
    for name, render in OUTPUTS.items():
        atomic_write_text(folder / name, render(results, compare))
    return results


# The paper layout's table files, by name (as OUTPUTS); paper.png is drawn beside them (FIGURES).
PAPER_OUTPUTS: dict[str, Render] = {
    "paper.md": lambda rs, c: "# Leaderboard (ModernBERT Table 1 layout)\n\n" + paper_markdown(rs, compare=c),
    "paper.csv": lambda rs, c: paper_csv(rs, compare=c),
    "paper.tex": lambda rs, c: paper_tex(rs, c),
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


def render_folder(folder: Path | str, results: list[Result], compare: CompareConfig | None = None, layout: str = "default") -> str:
    """Write every table of ``folder`` (all its saved results) and return the Markdown of ``results`` (this run's).

    With a baseline also the per-query difference plots (``<folder>/per-query/``); the baseline is looked up among
    every saved result, so this run's table may compare with an earlier run's. The CLI and the Python API both render so.
    """
    everything = write_leaderboard(folder, compare)
    write_per_query_plots(folder, compare)
    if layout == "paper":
        write_paper_leaderboard(folder, compare)
        return paper_markdown(results, compare=compare, everything=everything)
    return to_markdown(results, compare=compare, everything=everything)

