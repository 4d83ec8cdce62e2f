"""Every output renders from saved results alone, the same bytes every time, and unrelated results move no existing cell.

The outputs come from the product's registries (``benchmarks.leaderboard.OUTPUTS``, ``PAPER_OUTPUTS``,
``FIGURES``, ``benchmarks.matrix.OUTPUTS``): a format registered there is checked at once, and a
file the writers produce outside them fails a test.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil

import pytest

import evaluate
from benchmarks import cells, entries, leaderboard, table
from benchmarks.render import matrix
from benchmarks.render.csvfile import to_csv
from benchmarks.render.markdown import paper_markdown, to_markdown
from benchmarks.results import load_results, save_result
from tests.invariants.conftest import synthetic_rows, write_folder


@pytest.fixture(scope="module")
def board(tmp_path_factory, tiny_bert):
    """A results folder: BM25 and a tiny DPR on the test split of a synthetic folder named scifact; and ``extra``, the
    unrelated results a user adds later: the train split, other settings (--top-k 100, --bm25-pad), an MTEB run of the same data."""
    root = tmp_path_factory.mktemp("board")
    data = write_folder(root / "data" / "scifact", *synthetic_rows())
    other = write_folder(root / "data" / "nfcorpus", *synthetic_rows(seed=3))
    out, cache = root / "out", root / "cache"
    common = ["--datasets", f"{data},{other}", "--output", str(out), "--cache-dir", str(cache), "--device", "cpu", "--batch-size", "8", "-q"]
    assert evaluate.main([*common, "--models", f"bm25,{tiny_bert}", "--save-run", "--layout", "paper"]) == 0
    base = load_results(out)
    extra_dir = root / "extra"
    for flags in (["--split", "train"], ["--top-k", "100"], ["--bm25-pad"]):
        assert evaluate.main([*common, "--models", "bm25", "--output", str(extra_dir), *flags]) == 0
    bm25 = next(r for r in base if r.encoder == "bm25" and r.dataset == "scifact")
    mteb = dataclasses.replace(bm25, task="mteb", dataset="SciFact (MTEB)", config_key="m" * 20, created_at="2099-01-01T00:00:00+0000",
                               metrics={m: v * 0.9 for m, v in bm25.metrics.items()},
                               provenance={**bm25.provenance, "variant_key": "mteb-run", "settings": {**bm25.provenance["settings"], "data.task": "mteb"}})
    save_result(mteb, extra_dir)
    return out, base, load_results(extra_dir)


def shown_values(results, everything=None):
    """``{rid: (column, metrics)}`` of every result a table shows."""
    t = cells.choose(results, everything)
    return {cells.rid(r): (col, r.metrics) for (row, col), r in t.cells.items()}


def test_unrelated_results_move_no_existing_cell(board):
    out, base, extra = board
    before, after = cells.choose(base), cells.choose(base + extra)
    for (row, col), r in before.cells.items():
        row2, col2 = after.cell_of(r)
        assert after.cells[(row2, col2)] is r and col2 == col and (row2.model, row2.encoder) == (row.model, row.encoder)
    # Table 1 (test split only; an MTEB run of the same data is a row of its own, never averaged in)
    models0, values0, _, _ = table.paper_table(base)
    models1, values1, _, _ = table.paper_table(base + extra)
    for (row, col), r in before.cells.items():
        new_label = after.cell_of(r)[0].label
        assert values1[models1.index(new_label)] == values0[models0.index(row.label)], row.label
    # the default table's cells and means, per split
    for name, render in {**leaderboard.OUTPUTS, **leaderboard.PAPER_OUTPUTS}.items():  # a value an output showed, it still shows
        before_text, text = render(base, None), render(base + extra, None)
        for r in base:
            for shown in (f"{r.metrics['ndcg@10']:.4f}", f"{100 * r.metrics['ndcg@10']:.1f}", f"{r.metrics['ndcg@10']:.5f}"):
                assert shown not in before_text or shown in text, (name, r.model, shown)
    # each row's mean in each split's table (the test split's: over scifact and nfcorpus) is unmoved
    means0, means1 = markdown_means(to_markdown(base)), markdown_means(to_markdown(base + extra))
    assert means0 and all(means1[(title, after.cell_of(r)[0].label)] == m for (title, label), m in means0.items()
                          for r in base if before.cell_of(r)[0].label == label)
    rows = list(csv.DictReader(io.StringIO(to_csv(base + extra))))
    for r in base:  # the CSV row of each cell: same encoder, dataset, split and value, under its (maybe longer) label
        label = after.cell_of(r)[0].label
        assert any((x["model"], x["encoder"], x["split"], x["ndcg@10"]) == (label, r.encoder, r.split, f"{r.metrics['ndcg@10']:.5f}") for x in rows), r.model


def markdown_means(md: str) -> dict[tuple[str, str], str]:
    """``{(table title, row label): mean}`` of every pivot table of a Markdown leaderboard that has a mean column."""
    out, title, header = {}, None, None
    for line in md.splitlines():
        if line.startswith("## "):
            title, header = line, None
        elif line.startswith("| model |"):
            header = [c.strip() for c in line.strip("|").split("|")]
        elif header and "mean" in header and line.startswith("| ") and not line.startswith("|---"):
            row = [c.strip() for c in line.strip("|").split("|")]
            out[(title, row[0])] = row[header.index("mean")]
    return out


def test_a_mean_never_mixes_splits_and_a_dataset_counts_once(board):
    out, base, extra = board
    md = paper_markdown(base + extra)
    table1 = md.split("## ")[1]
    bm25 = [r for r in base if r.encoder == "bm25"]
    label = cells.choose(base + extra).cell_of(bm25[0])[0].label
    line = next(x for x in table1.splitlines() if x.startswith(f"| {label} |"))
    assert line.split(" | ")[1] == f"{50 * sum(r.metrics['ndcg@10'] for r in bm25):.1f}"  # the test split's two datasets, not train or MTEB
    assert "split train" in md  # the train result has a table of its own


def test_tables_rerendered_from_saved_results_equal_the_first_rendering(board, tmp_path):
    out, base, extra = board
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    names = [*leaderboard.OUTPUTS, *leaderboard.PAPER_OUTPUTS, *leaderboard.FIGURES]
    first = {n: (folder / n).read_bytes() for n in names}  # written by the evaluating run itself
    assert evaluate.main(["--leaderboard", str(folder), "--layout", "paper", "-q"]) == 0
    assert {n: (folder / n).read_bytes() for n in names} == first
    for extra_flags in (["--baseline", "BM25"], ["--baseline", "BM25", "--test", "randomization", "--permutations", "200"]):
        assert evaluate.main(["--leaderboard", str(folder), "--layout", "paper", *extra_flags, "-q"]) == 0
        once = {n: (folder / n).read_bytes() for n in names}
        assert evaluate.main(["--leaderboard", str(folder), "--layout", "paper", *extra_flags, "-q"]) == 0
        assert {n: (folder / n).read_bytes() for n in names} == once


def test_the_writers_write_exactly_the_registered_outputs(board, tmp_path):
    out, base, _ = board
    folder = tmp_path / "w"
    folder.mkdir()
    for r in base:
        save_result(r, folder)
    leaderboard.write_leaderboard(folder)
    leaderboard.write_paper_leaderboard(folder)
    written = {p.name for p in folder.iterdir() if p.suffix != ".json"}
    assert written == {*leaderboard.OUTPUTS, *leaderboard.PAPER_OUTPUTS, *leaderboard.FIGURES}
    rows = matrix.matrix_rows([], {})
    matrix.write_matrix(tmp_path / "m", rows)
    first = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    assert set(first) == set(matrix.OUTPUTS)
    matrix.write_matrix(tmp_path / "m", rows)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == first


def test_every_reproduction_entry_says_its_source_and_rejects_its_alternatives():
    shipped = entries.load_entries()
    for e in shipped:
        assert e.source_kind in entries.SOURCE_KINDS, e.name
        if e.train is not None:
            assert e.alternatives, f"{e.name}: a trained figure names what training is compared with"
        for a in e.alternatives:
            assert abs(a.value - e.expected) > e.tolerance, (e.name, a.label())
    rows = matrix.matrix_rows(shipped, {e.name: matrix.Outcome(reason="not run") for e in shipped})
    md = matrix.to_markdown(rows)
    assert all(f"| {r.name} | {r.metric} |" in md and f"| {r.source_kind} |" in md for r in rows)


def test_an_entry_whose_tolerance_accepts_its_alternative_is_refused(tmp_path):
    src = entries.DEFAULT_DIR / "nfc-dpr-inbatch.toml"
    text = src.read_text().replace("tolerance = 0.005", "tolerance = 0.01")
    folder = tmp_path / "entries"
    shutil.copytree(entries.DEFAULT_DIR, folder)
    (folder / src.name).write_text(text)
    with pytest.raises(entries.EntryError, match="would accept the alternative minilm-nfcorpus-mteb"):
        entries.load_entries(folder)
