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


def test_split_is_part_of_the_converted_cache(tmp_path):
    """Issue 17 #2: --split dev then --split test on one MLDR folder reads each split's own queries."""
    src = tmp_path / "mldr"
    jsonl(src / "corpus.jsonl", [{"docid": "d1", "text": "whales"}, {"docid": "d2", "text": "cats"}])
    jsonl(src / "dev.jsonl", [{"query_id": "dev-q", "query": "cats?", "positive_passages": [{"docid": "d2"}]}])
    jsonl(src / "test.jsonl", [{"query_id": "test-q", "query": "whales?", "positive_passages": [{"docid": "d1"}]}])
    dev = load_beir(layouts.as_beir(src, tmp_path / "cache", "dev"), "dev")
    test = load_beir(layouts.as_beir(src, tmp_path / "cache", "test"), "test")
    assert dev.qrels == {"dev-q": {"d2": 1}} and test.qrels == {"test-q": {"d1": 1}}
    assert dev.path != test.path
    with pytest.raises(Exception, match="split 'test' not found"):
        load_beir(dev.path, "test")  # the dev conversion holds dev qrels only


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


# ---- issue 17 #7: the converters go through the loader's validation -------------------------

from retrieval.beir import DataError  # noqa: E402

J = json.dumps
MLDR_OK = {
    "corpus.jsonl": J({"docid": "doc-1", "text": "whales"}) + "\n\n" + J({"docid": "doc-2", "text": "cats"}) + "\n  \n",
    "test.jsonl": "\n" + J({"query_id": "q-1", "query": "whales?", "positive_passages": [{"docid": "doc-1"}]}) + "\n\n",
}
LONGEMBED_OK = {
    "corpus.jsonl": J({"doc_id": "d1", "text": "needle"}) + "\n\n" + J({"doc_id": "d2", "text": "hay"}) + "\n",
    "queries.jsonl": J({"qid": "q1", "text": "find needle"}) + "\n\n",
    "qrels.jsonl": "\n" + J({"qid": "q1", "doc_id": "d1"}) + "\n",
}
HF_OK = {
    "corpus/corpus.jsonl": J({"_id": "c1", "text": "open a file"}) + "\n\n" + J({"_id": "c2", "text": "sort a list"}) + "\n",
    "queries/queries.jsonl": J({"_id": "q1", "text": "how to open a file"}) + "\n",
    "qrels/test.jsonl": "\n" + J({"query-id": "q1", "corpus-id": "c1", "score": 1}) + "\n",
}


def write_files(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("layout, files, qrels", [("mldr", MLDR_OK, {"q-1": {"doc-1": 1}}), ("longembed", LONGEMBED_OK, {"q1": {"d1": 1}}), ("hf", HF_OK, {"q1": {"c1": 1}})])
def test_converters_skip_blank_lines(tmp_path, layout, files, qrels):
    src = write_files(tmp_path / layout, files)
    assert layouts.detect(src) == layout
    ds = load_beir(layouts.as_beir(src, tmp_path / "cache"), "test")
    assert ds.qrels == qrels and len(ds.corpus) == 2


def _bad(base, rel, text):
    return {**base, rel: text}


BAD = [
    # (id, layout files, bad file, line, field, words)
    ("mldr-dup-doc", _bad(MLDR_OK, "corpus.jsonl", J({"docid": "a", "text": "x"}) + "\n" + J({"docid": "a", "text": "y"}) + "\n"), "corpus.jsonl", 2, "docid", "duplicate id 'a' (first seen on line 1)"),
    ("mldr-bad-json", _bad(MLDR_OK, "corpus.jsonl", J({"docid": "a", "text": "x"}) + "\n{\"docid\": \n"), "corpus.jsonl", 2, None, "malformed JSON"),
    ("mldr-no-text", _bad(MLDR_OK, "corpus.jsonl", J({"docid": "a"}) + "\n"), "corpus.jsonl", 1, "text", "is missing"),
    ("mldr-no-query", _bad(MLDR_OK, "test.jsonl", J({"query_id": "q", "positive_passages": [{"docid": "doc-1"}]}) + "\n"), "test.jsonl", 1, "query", "is missing"),
    ("mldr-dup-query", _bad(MLDR_OK, "test.jsonl", 2 * (J({"query_id": "q", "query": "x", "positive_passages": [{"docid": "doc-1"}]}) + "\n")), "test.jsonl", 2, "query_id", "duplicate id 'q'"),
    ("mldr-bad-positive", _bad(MLDR_OK, "test.jsonl", J({"query_id": "q", "query": "x", "positive_passages": [{"docid": "doc-1"}, {"text": "t"}]}) + "\n"), "test.jsonl", 1, "positive_passages[1].docid", "is missing"),
    ("mldr-no-positives", _bad(MLDR_OK, "test.jsonl", J({"query_id": "q", "query": "x", "positive_passages": "doc-1"}) + "\n"), "test.jsonl", 1, "positive_passages", "must be a list"),
    ("le-dup-doc", _bad(LONGEMBED_OK, "corpus.jsonl", 2 * (J({"doc_id": "d1", "text": "x"}) + "\n")), "corpus.jsonl", 2, "doc_id", "duplicate id 'd1'"),
    ("le-dup-query", _bad(LONGEMBED_OK, "queries.jsonl", 2 * (J({"qid": "q1", "text": "x"}) + "\n")), "queries.jsonl", 2, "qid", "duplicate id 'q1'"),
    ("le-qrels-no-doc", _bad(LONGEMBED_OK, "qrels.jsonl", J({"qid": "q1", "doc_id": "d1"}) + "\n" + J({"qid": "q1"}) + "\n"), "qrels.jsonl", 2, "doc_id", "is missing"),
    ("le-bad-json", _bad(LONGEMBED_OK, "queries.jsonl", "[1, 2]\n"), "queries.jsonl", 1, None, "expected a JSON object"),
    ("hf-dup-doc", _bad(HF_OK, "corpus/corpus.jsonl", 2 * (J({"_id": "c1", "text": "x"}) + "\n")), "corpus/corpus.jsonl", 2, "_id", "duplicate id 'c1'"),
    ("hf-no-id", _bad(HF_OK, "corpus/corpus.jsonl", J({"_id": "c1", "text": "x"}) + "\n" + J({"text": "y"}) + "\n"), "corpus/corpus.jsonl", 2, "_id", "is missing"),
    ("hf-no-id-column", _bad(HF_OK, "corpus/corpus.jsonl", J({"key": "c1", "text": "x"}) + "\n"), "corpus/corpus.jsonl", 1, "_id|id|corpus-id|docid|doc_id", "is missing (have key, text)"),
    ("hf-qrels-no-doc", _bad(HF_OK, "qrels/test.jsonl", J({"query-id": "q1", "score": 1}) + "\n"), "qrels/test.jsonl", 1, "corpus-id|corpus_id|doc_id|docid", "is missing"),
    ("hf-fraction", _bad(HF_OK, "qrels/test.jsonl", J({"query-id": "q1", "corpus-id": "c1", "score": 0.9}) + "\n"), "qrels/test.jsonl", 1, "score", "must be an integer"),
    ("hf-conflict", _bad(HF_OK, "qrels/test.jsonl", J({"query-id": "q1", "corpus-id": "c1", "score": 1}) + "\n" + J({"query-id": "q1", "corpus-id": "c1", "score": 2}) + "\n"), "qrels/test.jsonl", 2, "score", "conflicting duplicate"),
    ("hf-bad-json", _bad(HF_OK, "queries/queries.jsonl", "{\"_id\": \"q1\", \"text\": \"a\"\n"), "queries/queries.jsonl", 1, None, "malformed JSON"),
    # issue 17 acceptance 5: the other bad kinds, through the converters too
    ("hf-inf", _bad(HF_OK, "qrels/test.jsonl", J({"query-id": "q1", "corpus-id": "c1", "score": 1}) + "\n" + '{"query-id": "q1", "corpus-id": "c2", "score": Infinity}\n'), "qrels/test.jsonl", 2, "score", "got inf"),
    ("hf-nan", _bad(HF_OK, "qrels/test.jsonl", '{"query-id": "q1", "corpus-id": "c1", "score": NaN}\n'), "qrels/test.jsonl", 1, "score", "got nan"),
    ("hf-fraction-string", _bad(HF_OK, "qrels/test.jsonl", J({"query-id": "q1", "corpus-id": "c1", "score": "1.7"}) + "\n"), "qrels/test.jsonl", 1, "score", "got '1.7'"),
    ("hf-query-no-text", _bad(HF_OK, "queries/queries.jsonl", J({"_id": "q1", "text": "a"}) + "\n" + J({"_id": "q2"}) + "\n"), "queries/queries.jsonl", 2, "text", "is missing"),
    ("le-fraction", _bad(LONGEMBED_OK, "qrels.jsonl", J({"qid": "q1", "doc_id": "d1", "score": 0.5}) + "\n"), "qrels.jsonl", 1, "score", "must be an integer"),
    ("le-conflict", _bad(LONGEMBED_OK, "qrels.jsonl", J({"qid": "q1", "doc_id": "d1"}) + "\n" + J({"qid": "q1", "doc_id": "d1", "score": 2}) + "\n"), "qrels.jsonl", 2, "score", "conflicting duplicate of ('q1', 'd1'): 2 here, 1 on line 1"),
    ("le-doc-no-id", _bad(LONGEMBED_OK, "corpus.jsonl", J({"doc_id": "d1", "text": "x"}) + "\n" + J({"text": "y"}) + "\n"), "corpus.jsonl", 2, "doc_id", "is missing"),
    ("le-query-no-text", _bad(LONGEMBED_OK, "queries.jsonl", J({"qid": "q1"}) + "\n"), "queries.jsonl", 1, "text", "is missing"),
    ("mldr-query-bad-json", _bad(MLDR_OK, "test.jsonl", "{\"query_id\": \"q\",\n"), "test.jsonl", 1, None, "malformed JSON"),
]


@pytest.mark.parametrize("files, bad_file, line, field, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_converter_errors_name_file_line_field(tmp_path, files, bad_file, line, field, words):
    src = write_files(tmp_path / "src", files)
    with pytest.raises(DataError) as e:
        layouts.as_beir(src, tmp_path / "cache")
    assert (e.value.path, e.value.line, e.value.field) == (str(src / bad_file), line, field)
    assert words in str(e.value) and str(src / bad_file) in str(e.value)
    assert not list((tmp_path / "cache").rglob("*.jsonl"))  # nothing converted, nothing half-written


def test_hf_parquet_duplicate_across_files_names_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = write_files(tmp_path / "src", {k: v for k, v in HF_OK.items() if not k.startswith("corpus")})
    (src / "corpus").mkdir()
    pq.write_table(pa.Table.from_pylist([{"_id": "c1", "text": "a"}, {"_id": "c2", "text": "b"}]), src / "corpus" / "corpus-0.parquet")
    pq.write_table(pa.Table.from_pylist([{"_id": "c3", "text": "c"}, {"_id": "c1", "text": "d"}]), src / "corpus" / "corpus-1.parquet")
    with pytest.raises(DataError) as e:
        layouts.as_beir(src, tmp_path / "cache")
    assert (e.value.path, e.value.line, e.value.field) == (str(src / "corpus" / "corpus-1.parquet"), 2, "_id")
    assert "row 2" in str(e.value) and "corpus-0.parquet" in str(e.value)


@pytest.mark.parametrize("layout, files, bad_file", [("mldr", MLDR_OK, "test.jsonl"), ("longembed", LONGEMBED_OK, "qrels.jsonl"), ("hf", HF_OK, "queries/queries.jsonl")])
def test_converters_reject_non_utf8_with_line(tmp_path, layout, files, bad_file):
    src = write_files(tmp_path / layout, files)
    with open(src / bad_file, "ab") as f:
        f.write(b'{"_id": "caf\xe9"}\n')
    n_lines = (src / bad_file).read_bytes().count(b"\n")
    with pytest.raises(DataError, match=rf"{bad_file}, line {n_lines}: is not valid UTF-8 \(byte 0xe9"):
        layouts.as_beir(src, tmp_path / "cache")


def test_hf_parquet_nan_score_names_file_and_row(tmp_path):
    """A float parquet qrels column with NaN (a common export artefact) is refused with file, row and field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = write_files(tmp_path / "src", {k: v for k, v in HF_OK.items() if not k.startswith("qrels")})
    (src / "qrels").mkdir()
    pq.write_table(pa.Table.from_pylist([{"query-id": "q1", "corpus-id": "c1", "score": 1.0}, {"query-id": "q1", "corpus-id": "c2", "score": float("nan")}]), src / "qrels" / "test.parquet")
    with pytest.raises(DataError) as e:
        layouts.as_beir(src, tmp_path / "cache")
    assert (e.value.path, e.value.line, e.value.field) == (str(src / "qrels" / "test.parquet"), 2, "score")
    assert "row 2: field 'score' must be an integer relevance" in str(e.value)


@pytest.mark.parametrize("rel, text, line, field, words", [
    ("qrels/test.jsonl", J({"query-id": "q1", "corpus-id": "c1", "score": 0.9}) + "\n", 1, "score", "must be an integer relevance"),
    ("corpus/corpus.jsonl", J({"_id": "c1", "text": "x"}) + "\n" + J({"_id": "c1", "text": "y"}) + "\n", 2, "_id", "duplicate id 'c1'"),
])
def test_bad_converted_folder_through_evaluate_writes_no_result(tmp_path, capsys, rel, text, line, field, words):
    src = write_files(tmp_path / "data" / "snap", {**HF_OK, rel: text})
    out = tmp_path / "out"
    rc = evaluate.main(["--data-dir", str(tmp_path / "data"), "--datasets", "snap", "--models", "bm25", "--output", str(out), "--cache-dir", str(tmp_path / "cache"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {src / rel}, line {line}: field '{field}'" in err and words in err, err
    assert not [p for p in out.rglob("*") if p.is_file()] if out.exists() else True
    assert not list((tmp_path / "cache").rglob("*.jsonl"))  # nothing converted
