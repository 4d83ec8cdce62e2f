"""train.py on bad input (issue 17, acceptance 5) and on save_to_disk folders (issue 17, defect #15).

Every bad input exits 2 with ``error: FILE, line|row N: field 'F' ...`` on stderr, before any model
is loaded, and leaves nothing in ``--output`` (no checkpoint, no ``train_result.json``, no model).
The good versions of the same inputs train (the controls), so each failure is the bad input's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import train as cli
from encoders.training import trainer as trainer_mod
from encoders.training import trainset as trainset_mod
from tests.conftest import make_beir

CORPUS = [{"_id": f"d{i}", "title": f"T{i}", "text": f"document {i} about topic {i}"} for i in range(1, 5)]
QUERIES = [{"_id": f"q{i}", "text": f"what about topic {i}?"} for i in range(1, 5)]
QRELS = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(1, 5))
J = json.dumps


def run_train(tmp_path: Path, train_data: str, *extra: str, model: str = "no-model-needed") -> tuple[int, Path]:
    out = tmp_path / "out"
    argv = ["--model", model, "--train-data", train_data, "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--batch-size", "2", "--max-steps", "1", "--save-steps", "1", "--max-length", "16", "--device", "cpu", "-q", *extra]
    return cli.main(argv), out


def assert_no_result(out: Path) -> None:
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    assert left == [], f"--output holds {left}"


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model (student or mining model) fails the test: bad data must be refused before."""
    def boom(*a, **k):
        raise AssertionError("a model was loaded before the training data was validated")

    monkeypatch.setattr(trainer_mod, "load_student", boom)
    monkeypatch.setattr(trainset_mod, "load_dense", boom)


# ---- BEIR folders made bad in each way ---------------------------------------------------------

def _qrels(*rows: str) -> str:
    return "query-id\tcorpus-id\tscore\n" + "".join(r + "\n" for r in rows)


def _lines(rows: list[dict], extra: str) -> str:
    return "".join(J(r) + "\n" for r in rows) + extra


BAD_BEIR = [
    # (id, file to replace, its text, file named in the error, line, field, words)
    ("qrels-fraction", "qrels/train.tsv", _qrels("q1\td1\t1", "q2\td2\t0.9"), "qrels/train.tsv", 3, "score", "must be an integer relevance"),
    ("qrels-fraction-up", "qrels/train.tsv", _qrels("q1\td1\t1.7"), "qrels/train.tsv", 2, "score", "got '1.7'"),
    ("qrels-inf", "qrels/train.tsv", _qrels("q1\td1\t1", "q2\td2\tinf"), "qrels/train.tsv", 3, "score", "got 'inf'"),
    ("qrels-nan", "qrels/train.tsv", _qrels("q1\td1\tnan"), "qrels/train.tsv", 2, "score", "got 'nan'"),
    ("qrels-conflict", "qrels/train.tsv", _qrels("q1\td1\t1", "q2\td2\t1", "q1\td1\t2"), "qrels/train.tsv", 4, "score", "conflicting duplicate of ('q1', 'd1'): 2 here, 1 on line 2"),
    ("corpus-malformed-json", "corpus.jsonl", _lines(CORPUS[:2], '{"_id": "d9", "text": "x"\n'), "corpus.jsonl", 3, None, "malformed JSON"),
    ("corpus-missing-id", "corpus.jsonl", _lines(CORPUS[:2], J({"text": "no id"}) + "\n"), "corpus.jsonl", 3, "_id", "is missing"),
    ("corpus-duplicate-id", "corpus.jsonl", _lines(CORPUS, J({"_id": "d2", "text": "again"}) + "\n"), "corpus.jsonl", 5, "_id", "duplicate id 'd2' (first seen on line 2)"),
    ("corpus-missing-text", "corpus.jsonl", _lines(CORPUS[:1], J({"_id": "d9", "title": "t"}) + "\n"), "corpus.jsonl", 2, "text", "is missing"),
    ("queries-missing-text", "queries.jsonl", _lines(QUERIES[:1], J({"_id": "q9"}) + "\n"), "queries.jsonl", 2, "text", "is missing"),
    ("queries-text-not-string", "queries.jsonl", _lines(QUERIES[:2], J({"_id": "q9", "text": 7}) + "\n"), "queries.jsonl", 3, "text", "must be a string, got int"),
]


@pytest.mark.parametrize("rel, text, named, line, field, words", [b[1:] for b in BAD_BEIR], ids=[b[0] for b in BAD_BEIR])
def test_bad_beir_folder_names_file_line_field_and_writes_nothing(tmp_path, capsys, no_model, rel, text, named, line, field, words):
    root = make_beir(tmp_path / "data" / "toy", CORPUS, QUERIES, QRELS, split="train")
    (root / rel).write_text(text)
    rc, out = run_train(tmp_path, str(root))  # default mining (dense) would load a model: it must not get there
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"error: {root / named}, line {line}:" in err, err
    assert (f"field '{field}'" in err if field else True) and words in err, err
    assert_no_result(out)


def test_bad_beir_name_under_data_dir_is_refused_the_same_way(tmp_path, capsys, no_model):
    root = make_beir(tmp_path / "data" / "toy", CORPUS, QUERIES, _qrels("q1\td1\t0.5"), split="train")
    rc, out = run_train(tmp_path, "toy", "--data-dir", str(tmp_path / "data"))
    err = capsys.readouterr().err
    assert rc == 2 and f"{root / 'qrels' / 'train.tsv'}, line 2: field 'score'" in err, err
    assert_no_result(out)


def test_good_beir_folder_trains(tmp_path, tiny_bert):
    """The control: the same folder, unbroken, trains and writes its result."""
    root = make_beir(tmp_path / "data" / "toy", CORPUS, QUERIES, QRELS, split="train")
    rc, out = run_train(tmp_path, str(root), "--mine-method", "none", model=str(tiny_bert))
    assert rc == 0
    assert (out / "train_result.json").is_file() and (out / "model.safetensors").is_file()


# ---- JSONL and save_to_disk training data -------------------------------------------------------

PAIRS = [{"query": f"what about topic {i}?", "positive": f"document {i} about topic {i}", "negative": f"unrelated text {i}"} for i in range(4)]


def save_dataset(folder: Path, rows: list[dict], *, splits: tuple[str, ...] | None = None) -> Path:
    """``rows`` as a save_to_disk Dataset, or a DatasetDict with ``splits`` (each holding ``rows``)."""
    import datasets

    ds = datasets.Dataset.from_list(rows)
    (datasets.DatasetDict({s: ds for s in splits}) if splits else ds).save_to_disk(str(folder))
    return folder


def test_bad_jsonl_names_file_line_field(tmp_path, capsys, no_model):
    p = tmp_path / "pairs.jsonl"
    p.write_text(J(PAIRS[0]) + "\n\n" + J({"query": "q", "negatives": ["n"]}) + "\n")
    rc, out = run_train(tmp_path, str(p))
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {p}, line 3: field 'positive' is missing" in err, err
    assert_no_result(out)


BAD_SAVED = [
    # (id, rows, row, field, words)
    ("empty-positive", PAIRS[:2] + [{**PAIRS[2], "positive": "  "}], 3, "positive", "must be a non-empty string"),
    ("missing-positive", PAIRS[:1] + [{**PAIRS[1], "positive": None}], 2, "positive", "is missing"),
    ("query-not-string", [{**r, "query": i} for i, r in enumerate(PAIRS)], 1, "query", "must be a string, got int"),
    ("empty-negative", PAIRS[:3] + [{**PAIRS[3], "negative": ""}], 4, "negative", "must be a non-empty string"),
    ("no-positive-column", [{"query": r["query"], "pos": r["positive"]} for r in PAIRS], 1, "positive", "is missing: expected columns query (or anchor), positive"),
    ("no-query-column", [{"question": r["query"], "positive": r["positive"]} for r in PAIRS], 1, "query", "is missing"),
]


@pytest.mark.parametrize("dict_", [False, True], ids=["Dataset", "DatasetDict"])
@pytest.mark.parametrize("rows, row, field, words", [b[1:] for b in BAD_SAVED], ids=[b[0] for b in BAD_SAVED])
def test_bad_saved_dataset_names_folder_row_field_and_writes_nothing(tmp_path, capsys, no_model, dict_, rows, row, field, words):
    folder = save_dataset(tmp_path / "saved", rows, splits=("train",) if dict_ else None)
    rc, out = run_train(tmp_path, str(folder))
    err = capsys.readouterr().err
    named = folder / "train" if dict_ else folder
    assert rc == 2, err
    assert f"error: {named}, row {row}: field '{field}'" in err and words in err, err
    assert "not a BEIR folder" not in err
    assert_no_result(out)


def test_saved_dataset_dict_missing_split_lists_the_splits(tmp_path, capsys, no_model):
    folder = save_dataset(tmp_path / "saved", PAIRS, splits=("dev", "test"))
    rc, out = run_train(tmp_path, str(folder))
    err = capsys.readouterr().err
    assert rc == 2 and f"{folder}: split 'train' not found; available splits: ['dev', 'test']" in err, err
    rc, out = run_train(tmp_path, f"{folder}:validation")
    assert rc == 2 and "split 'validation' not found; available splits: ['dev', 'test']" in capsys.readouterr().err
    assert_no_result(out)


@pytest.mark.parametrize("shape", ["Dataset", "DatasetDict", "DatasetDict:dev", "name under --data-dir"])
def test_save_to_disk_folder_trains(tmp_path, tiny_bert, shape):
    """Defect #15: a ``save_to_disk`` folder (here named like nothing in particular) is read with
    ``datasets.load_from_disk``, not taken for a BEIR folder ("not a BEIR folder" before the fix)."""
    rows = [{"anchor": r["query"], "positive": r["positive"], "negative_1": r["negative"], "negative_2": r["negative"] + " b"} for r in PAIRS]
    splits = None if shape == "Dataset" else ("dev",) if shape.endswith(":dev") else ("train", "test")
    folder = save_dataset(tmp_path / "data" / "marco-copy", rows, splits=splits)
    spec, extra = (str(folder) + (":dev" if shape.endswith(":dev") else ""), ()) if shape != "name under --data-dir" else ("marco-copy", ("--data-dir", str(tmp_path / "data")))
    rc, out = run_train(tmp_path, spec, *extra, "--mine-count", "2", model=str(tiny_bert))
    assert rc == 0
    rec = json.loads((out / "train_result.json").read_text())
    assert rec["steps"] == 1 and rec["data"]["examples_used"] == 4 and rec["data"]["negatives_per_example"] == 2
    assert rec["data"]["checksum"] and rec["data"]["dataset"].startswith(str(folder))
