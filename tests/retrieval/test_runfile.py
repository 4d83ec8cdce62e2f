"""TREC run files: scores survive a write/read round trip bit for bit, so a saved run rescores to the reported metric."""

import numpy as np
import pytest

from retrieval.beir import DataError
from retrieval.metrics import evaluate, trec_order
from retrieval.runfile import format_trec, read_trec, write_trec


def close_scores_run(seed: int, n_queries: int = 30, n_docs: int = 20, dtype=np.float32) -> dict[str, dict[str, float]]:
    """Each query's scores are consecutive representable floats of ``dtype`` above a random base: distinct, but equal to 6 decimals."""
    rng = np.random.default_rng(seed)
    run = {}
    for q in range(n_queries):
        s = np.full(n_docs, rng.uniform(0, 30), dtype=dtype)
        for j in range(1, n_docs):
            s[j] = np.nextafter(s[j - 1], dtype(np.inf))
        docs = [f"d{i}" for i in rng.permutation(100)[:n_docs]]
        run[f"q{q}"] = {d: float(x) for d, x in zip(docs, rng.permutation(s))}
    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_keeps_every_score_and_metric(tmp_path, dtype):
    run = close_scores_run(0, dtype=dtype)
    rng = np.random.default_rng(1)
    qrels = {q: {d: int(rng.integers(1, 3)) for d in rng.choice(sorted(docs), 3, replace=False)} for q, docs in run.items()}
    write_trec(run, tmp_path / "run.trec", tag="bm25 test")
    back = read_trec(tmp_path / "run.trec")
    assert evaluate(qrels, back) == evaluate(qrels, run)
    assert back == run  # bit-identical floats


def test_lines_are_in_trec_eval_order_with_ranks():
    run = {"q1": {"a": 1.0, "b": 1.0, "c": 2.0}}
    lines = format_trec(run, "sys").splitlines()
    assert [ln.split()[2] for ln in lines] == [d for d, _ in trec_order(run["q1"])]
    assert [ln.split()[3] for ln in lines] == ["1", "2", "3"] and all(ln.split()[5] == "sys" for ln in lines)


@pytest.mark.parametrize("line, field, words", [("q1 Q0 d1 1 high sys", "score", "must be a finite number"), ("q1 Q0 d1 1 nan sys", "score", "must be a finite number"),
                                                 ("q1 Q0 d1 1", None, "expected 6 columns")])
def test_bad_run_lines_name_file_line_field(tmp_path, line, field, words):
    p = tmp_path / "run.trec"
    p.write_text(f"q1 Q0 d0 1 2.5 sys\n{line}\n")
    with pytest.raises(DataError) as e:
        read_trec(p)
    assert (e.value.line, e.value.field) == (2, field) and words in str(e.value)


def test_duplicate_hit_is_an_error(tmp_path):
    p = tmp_path / "run.trec"
    p.write_text("q1 Q0 d0 1 2.5 sys\nq1 Q0 d0 2 1.5 sys\n")
    with pytest.raises(DataError, match=r"line 2: field 'docid' duplicate hit 'd0' for query 'q1' \(first on line 1\)"):
        read_trec(p)
