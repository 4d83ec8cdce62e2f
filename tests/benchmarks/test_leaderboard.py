"""Leaderboards render from saved results only (hand-made Result files here)."""

import csv

import evaluate
from benchmarks.render.csvfile import to_csv
from benchmarks.table import PAPER_COLUMNS, paper_table
from benchmarks.results import Result, save_result


def res(model, encoder, dataset, task, ndcg, **prov):
    return Result(model=model, encoder=encoder, dataset=dataset, split="test", task=task, metrics={"ndcg@10": ndcg, "recall@100": 0.9, "mrr@10": 0.5, "map@100": 0.4}, num_queries=10, num_docs=100, config_key="k", provenance=prov)


RESULTS = [
    res("ModernBERT-base", "dpr", "scifact", "beir", 0.60),
    res("ModernBERT-base", "dpr", "nfcorpus", "beir", 0.30),
    res("ModernBERT-base", "colbert", "scifact", "beir", 0.70),
    res("ModernBERT-base", "dpr", "mldr", "longdoc", 0.25),
    res("ModernBERT-base", "dpr", "mldr", "longdoc", 0.40, in_domain=True),
    res("ModernBERT-base", "dpr", "codesearchnet", "code", 0.55),
    res("ModernBERT-base", "dpr", "cosqa", "code", 0.33),
    res("BM25", "bm25", "scifact", "beir", 0.69),
]


def test_paper_table_columns_and_means():
    models, values, used, partial = paper_table(RESULTS)
    assert models == ["ModernBERT-base", "BM25"]
    row = dict(zip(PAPER_COLUMNS, values[0]))
    assert abs(row["BEIR-DPR"] - 0.45) < 1e-9  # mean of scifact and nfcorpus
    assert row["BEIR-ColBERT"] == 0.70 and row["CSN"] == 0.55 and row["SQA"] is None
    assert row["MLDR-ID"] == 0.40 and row["MLDR-OOD"] == 0.25
    assert dict(zip(PAPER_COLUMNS, values[1]))["BEIR-DPR"] == 0.69
    assert used["BEIR-DPR"] == ["nfcorpus", "scifact"]  # columns in sorted order, whatever order the results come in
    assert partial[1][0] is True and partial[0][0] is False  # BM25 has scifact only


def test_rerender_paper_layout_from_saved_results(tmp_path, capsys):
    for i, r in enumerate(RESULTS):
        r.model = r.model if i != 4 else "ModernBERT-base-mldr"  # distinct file for the in-domain run
        save_result(r, tmp_path)
    (tmp_path / "notes.json").write_text('{"not": "a result"}')
    assert evaluate.main(["--leaderboard", str(tmp_path), "--layout", "paper"]) == 0
    md = (tmp_path / "paper.md").read_text()
    assert "| ModernBERT-base | 45.0 | 25.0 | — | 70.0 | — | 55.0 | — |" in md
    assert "## code (ndcg@10 x 100)" in md and "cosqa" in md
    assert (tmp_path / "paper.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table data-table='t1'>" in (tmp_path / "paper.html").read_text()
    rows = list(csv.reader(open(tmp_path / "paper.csv")))
    assert rows[0] == ["model"] + PAPER_COLUMNS
    assert "Table 1 layout" in capsys.readouterr().out


def test_csv_header_and_values():
    rows = list(csv.reader(to_csv(RESULTS[:1]).splitlines()))
    assert rows[0][:8] == ["model", "encoder", "dataset", "split", "ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert rows[1][:5] == ["ModernBERT-base", "dpr", "scifact", "test", "0.60000"]


def test_cli_help_renders():
    import subprocess
    import sys

    from tests.conftest import ROOT

    for script in ("evaluate.py", "train.py"):
        p = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0 and "--output" in p.stdout, p.stderr
