"""Other published layouts (MLDR, LongEmbed, MTEB/CoIR snapshots) convert to BEIR and evaluate."""

import json

import pytest

import evaluate
from retrieval import layouts
from retrieval.beir import load_beir
from benchmarks.results import load_results


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_mldr_layout(tmp_path):
    src = tmp_path / "mldr"
    jsonl(src / "corpus.jsonl", [{"docid": "doc-1", "text": "long text about whales"}, {"docid": "doc-2", "text": "cats"}])
    jsonl(src / "test.jsonl", [{"query_id": "q-1", "query": "whales?", "positive_passages": [{"docid": "doc-1", "text": "..."}], "negative_passages": []}])
    assert layouts.detect(src) == "mldr"
    ds = load_beir(layouts.as_beir(src, tmp_path / "cache"), "test")
    assert ds.qrels == {"q-1": {"doc-1": 1}} and ds.corpus["doc-2"]["text"] == "cats"


def test_longembed_layout(tmp_path):
    src = tmp_path / "le"
    jsonl(src / "corpus.jsonl", [{"doc_id": "d1", "text": "needle"}, {"doc_id": "d2", "text": "hay"}])
    jsonl(src / "queries.jsonl", [{"qid": "q1", "text": "find needle"}])
    jsonl(src / "qrels.jsonl", [{"qid": "q1", "doc_id": "d1"}])
    assert layouts.detect(src) == "longembed"
    assert load_beir(layouts.as_beir(src, tmp_path / "cache"), "test").qrels == {"q1": {"d1": 1}}


def test_hf_parquet_layout_through_evaluate(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "data" / "stackoverflowqa"
    for sub, rows in {
        "corpus/corpus-00000.parquet": [{"_id": "c1", "title": "", "text": "use list comprehension to square numbers"}, {"_id": "c2", "title": "", "text": "open a file with a context manager"}],
        "queries/queries-00000.parquet": [{"_id": "q1", "text": "how to open a file"}],
        "qrels/test.parquet": [{"query-id": "q1", "corpus-id": "c2", "score": 1}],
    }.items():
        (src / sub).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), src / sub)
    assert layouts.detect(src) == "hf"
    rc = evaluate.main(["--task", "code", "--data-dir", str(tmp_path / "data"), "--datasets", "stackoverflowqa", "--models", "bm25", "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "-q"])
    assert rc == 0
    (r,) = load_results(tmp_path / "out")
    assert r.task == "code" and r.dataset == "stackoverflowqa" and r.metrics["mrr@10"] == 1.0


def test_unknown_layout_is_a_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="not a BEIR, MLDR, LongEmbed or MTEB/HF retrieval folder"):
        layouts.as_beir(tmp_path / "junk", tmp_path / "cache")
