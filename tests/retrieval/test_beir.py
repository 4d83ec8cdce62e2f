"""BEIR loaders: the happy path, every bad-input case (file, line and field named), and dataset resolution."""

import logging
from pathlib import Path

import pytest

from retrieval import sources as datasets
from retrieval.beir import DataError, doc_text, load_beir, load_corpus, load_qrels, load_queries
from tests.conftest import make_beir


def test_load_beir_happy_path(tmp_path):
    ds = load_beir(make_beir(tmp_path / "toy"), "test")
    assert ds.corpus == {"d1": {"title": "T1", "text": "alpha"}, "d2": {"title": "", "text": "beta"}}
    assert ds.queries == {"q1": "alpha?"}  # q2 has no qrels in this split: dropped
    assert ds.qrels == {"q1": {"d1": 1}}
    assert len(ds.checksum) == 64 and ds.unknown_qrels_docs == 0
    assert doc_text(ds.corpus["d1"]) == "T1 alpha" and doc_text(ds.corpus["d2"]) == "beta"


@pytest.mark.parametrize(
    "corpus_text, line, field, words",
    [
        ('{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', 2, None, "malformed JSON"),
        ('{"_id": "d1", "text": "a"}\n{"title": "x", "text": "b"}\n', 2, "_id", "missing"),
        ('{"_id": "d1", "title": "x"}\n', 1, "text", "missing"),
        ('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', 2, "_id", "duplicate id 'd1' (first seen on line 1)"),
        ('{"_id": "d1", "text": 5}\n', 1, "text", "must be a string"),
        ('["not", "an", "object"]\n', 1, None, "expected a JSON object"),
    ],
)
def test_bad_corpus_lines_name_file_line_field(tmp_path, corpus_text, line, field, words):
    p = tmp_path / "corpus.jsonl"
    p.write_text(corpus_text)
    with pytest.raises(DataError) as e:
        load_corpus(p)
    assert e.value.path == str(p) and e.value.line == line and e.value.field == field
    msg = str(e.value)
    assert str(p) in msg and f"line {line}" in msg and words in msg
    if field:
        assert f"'{field}'" in msg


def test_non_utf8_byte_is_reported_with_line(tmp_path):
    p = tmp_path / "queries.jsonl"
    p.write_bytes(b'{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"line 2.*not valid UTF-8 \(byte 0xe9"):
        load_queries(p)


def test_empty_corpus(tmp_path):
    p = tmp_path / "corpus.jsonl"
    p.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        load_corpus(p)


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("qid\tdid\tscore\nq1\td1\t1\n", 1, "header", "expected columns"),
        ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, None, "expected 3 tab-separated columns"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\textra\n", 2, None, "got 4"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", 2, "score", "must be an integer"),
        ("query-id corpus-id score\nq1 d1 1\n", 1, "header", "separated by tabs"),
        ("", None, None, "empty"),
    ],
)
def test_bad_qrels(tmp_path, text, line, field, words):
    p = tmp_path / "test.tsv"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        load_qrels(p)
    assert e.value.line == line and e.value.field == field and words in str(e.value) and str(p) in str(e.value)


def test_unknown_qrels_docs_get_a_counted_warning(tmp_path, caplog):
    root = make_beir(tmp_path / "toy", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tghost1\t1\nq1\tghost2\t1\n")
    with caplog.at_level(logging.WARNING):
        ds = load_beir(root, "test")
    assert ds.unknown_qrels_docs == 2
    assert any("2 qrels rows point at documents not in" in r.message for r in caplog.records)


def test_missing_split_lists_available(tmp_path):
    root = make_beir(tmp_path / "toy")
    with pytest.raises(DataError, match=r"split 'dev' not found; available splits: \['test'\]"):
        load_beir(root, "dev")


def test_resolution_order(tmp_path, monkeypatch):
    flag_dir, env_dir, cache = tmp_path / "flag", tmp_path / "env", tmp_path / "cache"
    for d in (flag_dir, env_dir, cache / "datasets"):
        make_beir(d / "toyset")
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(env_dir))
    monkeypatch.setenv(datasets.CACHE_ENV, str(cache))
    assert datasets.resolve("toyset", flag_dir) == flag_dir / "toyset"
    assert datasets.resolve("toyset", None) == env_dir / "toyset"
    monkeypatch.delenv(datasets.DATA_DIR_ENV)
    assert datasets.resolve("toyset", None) == cache / "datasets" / "toyset"
    assert datasets.resolve(str(flag_dir / "toyset")) == flag_dir / "toyset"  # a path is used as-is


def test_unknown_name_suggests(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="did you mean scifact"):
        datasets.resolve("scifcat", tmp_path)


def test_download_failure_is_clear_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)

    def offline(url, path):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets.urllib.request, "urlretrieve", offline)
    with pytest.raises(FileNotFoundError, match="downloading https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip failed"):
        datasets.resolve("scifact", None)
    assert not (tmp_path / "datasets" / "scifact").exists()
    assert list((tmp_path / "datasets").iterdir()) == []  # the temporary download folder is gone


def test_download_checks_md5_then_unpacks(tmp_path, monkeypatch):
    import hashlib
    import zipfile

    src = make_beir(tmp_path / "src" / "scifact")
    zpath = tmp_path / "scifact.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(src.rglob("*")):
            z.write(f, f.relative_to(src.parent))
    monkeypatch.setattr(datasets.urllib.request, "urlretrieve", lambda url, path: Path(path).write_bytes(zpath.read_bytes()))
    root = tmp_path / "datasets"
    with pytest.raises(ValueError, match="does not match BEIR's published 5f7d1de60b170fc8027bb7898e2efca1"):
        datasets.download_beir("scifact", root)
    assert not (root / "scifact").exists()
    monkeypatch.setitem(datasets.BEIR_MD5, "scifact", hashlib.md5(zpath.read_bytes()).hexdigest())
    out = datasets.download_beir("scifact", root)
    assert out == root / "scifact" and load_beir(out, "test").qrels == {"q1": {"d1": 1}}
    assert [p.name for p in root.iterdir()] == ["scifact"]  # no temporary leftovers


# ---- issue 17 #6: strict qrels -------------------------------------------------------------

HEADER = "query-id\tcorpus-id\tscore\n"


@pytest.mark.parametrize("score", ["0.9", "1.7", "-0.5", "inf", "-inf", "nan", "1e400", "", "one", "0x1"])
def test_qrels_score_must_be_an_integer(tmp_path, score):
    p = tmp_path / "test.tsv"
    p.write_text(f"{HEADER}q1\td0\t1\nq1\td1\t{score}\n")
    with pytest.raises(DataError) as e:
        load_qrels(p)
    assert (e.value.path, e.value.line, e.value.field) == (str(p), 2 + 1, "score")
    assert str(p) in str(e.value) and "line 3" in str(e.value) and "'score'" in str(e.value) and repr(score) in str(e.value)


@pytest.mark.parametrize("score, rel", [("2", 2), ("-1", -1), ("0", 0), ("+3", 3), ("2.0", 2), (" 1 ", 1)])
def test_qrels_integer_scores_negative_allowed(tmp_path, score, rel):
    p = tmp_path / "test.tsv"
    p.write_text(f"{HEADER}q1\td1\t{score}\n")
    assert load_qrels(p) == {"q1": {"d1": rel}}


def test_qrels_conflicting_duplicate_is_an_error(tmp_path):
    p = tmp_path / "test.tsv"
    p.write_text(f"{HEADER}q1\td1\t1\nq2\td1\t0\nq1\td1\t2\n")
    with pytest.raises(DataError) as e:
        load_qrels(p)
    assert (e.value.line, e.value.field) == (4, "score")
    assert "conflicting duplicate" in str(e.value) and "line 2" in str(e.value)


def test_qrels_identical_duplicates_get_one_counted_warning(tmp_path, caplog):
    p = tmp_path / "test.tsv"
    p.write_text(f"{HEADER}q1\td1\t1\nq1\td1\t1\nq1\td2\t2\nq1\td1\t1\nq1\td2\t2\n")
    with caplog.at_level(logging.WARNING, logger="retrieval.beir"):
        assert load_qrels(p) == {"q1": {"d1": 1, "d2": 2}}
    dup = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(dup) == 1 and "3 identical duplicate rows" in dup[0] and str(p) in dup[0]
