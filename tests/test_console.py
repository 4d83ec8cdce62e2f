"""The console: our loggers at INFO, no third-party logger below WARNING by default, narrow filters, --list."""

from __future__ import annotations

import logging

import pytest

import evaluate
from retrieval import logs, progress


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def root_records():
    """Every record that reaches the root logger, or a library logger that does not propagate (transformers)."""
    h = Records()
    targets = [logging.getLogger()] + [lg for name, lg in logging.root.manager.loggerDict.items()
                                       if isinstance(lg, logging.Logger) and not lg.propagate and not name.startswith(logs.OURS)]
    for lg in targets:
        lg.addHandler(h)
    yield h
    for lg in targets:
        lg.removeHandler(h)
    logs.setup(0)
    progress.set_enabled(True)


def test_no_third_party_logger_below_warning_by_default(tmp_path, scifact_slice, tiny_bert, root_records, capsys):
    assert evaluate.main(["--datasets", str(scifact_slice), "--models", f"bm25,{tiny_bert}", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]) == 0
    noisy = [(r.name, r.levelname, r.getMessage()[:80]) for r in root_records.records if r.levelno < logging.WARNING and not r.name.startswith(logs.OURS)]
    assert noisy == []
    err = capsys.readouterr().err
    assert "INFO benchmarks.pipeline: BM25 (bm25) on scifact/test: nDCG@10" in err and "computed" in err  # one summary line per result
    assert "Traceback" not in err and "LOAD REPORT" not in err and "swigfaiss" not in err


def test_quiet_prints_the_table_and_the_path_only(tmp_path, scifact_slice, capsys):
    args = ["--datasets", str(scifact_slice), "--models", "bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "-q"]
    assert evaluate.main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("## ndcg@10") and out.rstrip().endswith("(leaderboard.md, leaderboard.csv, leaderboard.tex, leaderboard.html)")
    assert err == ""


def test_real_warnings_still_show(root_records):
    logs.setup(0)
    logging.getLogger("transformers.modeling_utils").warning("Some weights of X were not initialized from the model checkpoint")
    logging.getLogger("faiss.loader").warning("a real faiss problem")
    report = "BertModel LOAD REPORT from: x\n| encoder.layer.0.weight | MISSING | |\n| embeddings.position_ids | UNEXPECTED | |"
    logging.getLogger("transformers.modeling_utils").warning(report)
    logging.getLogger("transformers.modeling_utils").warning("BertModel LOAD REPORT from: x\n| embeddings.position_ids | UNEXPECTED | |")  # harmless: dropped
    msgs = [r.getMessage() for r in root_records.records]
    assert msgs == ["Some weights of X were not initialized from the model checkpoint", "a real faiss problem", report]


@pytest.mark.parametrize("what,expect", [("datasets", "scifact"), ("tasks", "longdoc"), ("models", "minilm"), ("indexes", "ivfpq"), ("layouts", "paper")])
def test_list(what, expect, capsys):
    assert evaluate.main(["--list", what]) == 0
    assert expect in capsys.readouterr().out
