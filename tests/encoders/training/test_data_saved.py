"""Training data from ``datasets`` save_to_disk folders (issue 17, defect #15) and the shared per-row check.

A save_to_disk folder is recognised by its content, read with ``datasets.load_from_disk`` and checked
row by row like a JSONL file (the same :func:`check_example`), errors naming folder, row and field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_beir
from encoders.training.data import (check_example, is_saved_dataset, load_jsonl_examples, load_saved_examples, negative_fields,
                                    parse_train_data, saved_checksum, saved_split)
from retrieval.beir import DataError


def save(folder: Path, columns: dict, splits: tuple[str, ...] | None = None) -> Path:
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_dict(columns)
    (datasets.DatasetDict({s: ds for s in splits}) if splits else ds).save_to_disk(str(folder))
    return folder


TRIPLETS = {"query": ["q1", "q2", "q3"], "positive": ["p1", "p2", "p3"], "negative": ["n1", "n2", "n3"]}


def test_saved_folders_are_recognised_by_content_not_name(tmp_path):
    d = save(tmp_path / "scifact", TRIPLETS)  # a BEIR name, but a saved Dataset
    dd = save(tmp_path / "beir-copy", TRIPLETS, splits=("train",))
    beir = make_beir(tmp_path / "msmarco-saved_to_disk", split="train")  # a BEIR folder named like a saved one
    assert is_saved_dataset(d) and is_saved_dataset(dd) and is_saved_dataset(dd / "train")
    assert not is_saved_dataset(beir) and not is_saved_dataset(tmp_path / "nope")
    assert parse_train_data(str(d)).kind == "saved" and parse_train_data(str(beir)).kind == "beir"
    assert parse_train_data("scifact", tmp_path) == parse_train_data(str(d))  # a name under --data-dir, found by content
    assert parse_train_data(f"{dd}:train").split == "train" and parse_train_data(str(dd)).split == ""
    assert parse_train_data("scifact").kind == "beir"  # no data_dir: a BEIR name as before


def test_dataset_and_dataset_dict_give_the_same_examples(tmp_path):
    d = load_saved_examples(save(tmp_path / "d", TRIPLETS))
    dd = load_saved_examples(save(tmp_path / "dd", TRIPLETS, splits=("test", "train")))
    assert d == dd
    assert d.queries == ["q1", "q2", "q3"] and d.positives == ["p1", "p2", "p3"] and d.negatives == [["n1"], ["n2"], ["n3"]]
    assert d.qids is None  # nothing to mine from: the given negatives are used


def test_dataset_dict_split_named_in_the_spec_or_train(tmp_path):
    dd = save(tmp_path / "dd", TRIPLETS, splits=("dev", "train"))
    assert saved_split(dd) == dd / "train" and saved_split(dd, "dev") == dd / "dev"
    with pytest.raises(DataError, match=r"split 'test' not found; available splits: \['dev', 'train'\]"):
        saved_split(dd, "test")
    only_dev = save(tmp_path / "only-dev", TRIPLETS, splits=("dev",))
    with pytest.raises(DataError, match=r"split 'train' not found; available splits: \['dev'\] \(pick one with .*only-dev:SPLIT\)"):
        load_saved_examples(only_dev)
    with pytest.raises(DataError, match="single saved Dataset with no splits; drop ':dev'"):
        load_saved_examples(save(tmp_path / "d", TRIPLETS), "dev")


def test_sentence_transformers_shapes(tmp_path):
    """anchor/positive pairs, numbered hard negatives (MS MARCO triplet-50 style), a negatives list; other columns ignored."""
    pairs = load_saved_examples(save(tmp_path / "pairs", {"anchor": ["a", "b"], "positive": ["x", "y"], "score": [0.5, 0.7]}))
    assert pairs.queries == ["a", "b"] and pairs.negatives == [[], []]
    numbered = {"query": ["a"], "positive": ["x"], **{f"negative_{k}": [f"n{k}"] for k in (10, 2, 1)}}
    assert load_saved_examples(save(tmp_path / "numbered", numbered)).negatives == [["n1", "n2", "n10"]]
    listed = load_saved_examples(save(tmp_path / "listed", {"query": ["a", "b"], "positive": ["x", "y"], "negatives": [["m", "n"], []]}))
    assert listed.negatives == [["m", "n"], []]
    assert negative_fields(["negative_2", "query", "negative", "negatives", "negative_1", "negative_x"]) == ["negatives", "negative", "negative_1", "negative_2"]


def test_pick_keeps_only_the_chosen_rows_but_checks_them_all(tmp_path):
    cols = {"query": [f"q{i}" for i in range(25)], "positive": [f"p{i}" for i in range(25)]}
    ex = load_saved_examples(save(tmp_path / "ok", cols), pick=lambda n: [0, 7, n - 1], batch_size=4)
    assert ex.queries == ["q0", "q7", "q24"]
    cols["positive"][22] = ""
    with pytest.raises(DataError, match=r"bad, row 23: field 'positive' must be a non-empty string"):
        load_saved_examples(save(tmp_path / "bad", cols), pick=lambda n: [0], batch_size=4)  # a row not picked is still checked


@pytest.mark.parametrize("columns, row, field, words", [
    ({"query": ["a", None], "positive": ["x", "y"]}, 2, "query", "is missing"),
    ({"query": ["a", "b"], "positive": ["x", "\t "]}, 2, "positive", "must be a non-empty string"),
    ({"query": [1, 2], "positive": ["x", "y"]}, 1, "query", "must be a string, got int"),
    ({"query": ["a", "b"], "positive": ["x", "y"], "negative_1": ["n", ""]}, 2, "negative_1", "must be a non-empty string"),
    ({"query": ["a", "b"], "positive": ["x", "y"], "negatives": [["n"], ["m", ""]]}, 2, "negatives", "must be a list of non-empty strings"),
    ({"query": ["a"], "positive": ["x"], "negatives": ["n"]}, 1, "negatives", "must be a list of non-empty strings"),
    ({"question": ["a"], "answer": ["x"]}, 1, "query", "is missing: expected columns query (or anchor), positive"),
    ({"query_id": [1], "document_ids": [[2, 3]], "scores": [[0.1, 0.2]]}, 1, "query", "teacher-score rows"),
])
def test_bad_rows_name_folder_row_and_field(tmp_path, columns, row, field, words):
    folder = save(tmp_path / "bad", columns, splits=("train",))
    with pytest.raises(DataError) as e:
        load_saved_examples(folder)
    assert (e.value.path, e.value.line, e.value.field) == (str(folder / "train"), row, field)
    assert f"{folder / 'train'}, row {row}: field '{field}'" in str(e.value) and words in str(e.value)


def test_empty_and_unreadable_folders(tmp_path):
    # datasets 5.2 writes an empty Dataset that its own load_from_disk cannot read (IndexError): still a clear DataError
    with pytest.raises(DataError, match="empty: (is empty: no examples|cannot be read by datasets.load_from_disk)"):
        load_saved_examples(save(tmp_path / "empty", {"query": [], "positive": []}))
    broken = save(tmp_path / "broken", TRIPLETS)
    for p in broken.glob("*.arrow"):
        p.write_bytes(b"not arrow")
    with pytest.raises(DataError, match="broken: cannot be read by datasets.load_from_disk"):
        load_saved_examples(broken)
    with pytest.raises(DataError, match="is not a datasets save_to_disk folder"):
        load_saved_examples(make_beir(tmp_path / "beir"))


def test_checksum_follows_the_rows(tmp_path):
    a = saved_checksum(save(tmp_path / "a", TRIPLETS))
    assert a == saved_checksum(save(tmp_path / "a-copy", TRIPLETS))
    assert a != saved_checksum(save(tmp_path / "b", {**TRIPLETS, "positive": ["p1", "p2", "p4"]}))


def test_jsonl_reads_the_same_shapes_through_the_same_check(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"anchor": "a", "positive": "x", "negative": "n", "negative_1": "m"}) + "\n"
                 + json.dumps({"query": "b", "positive": "y", "negatives": ["k"]}) + "\n")
    ex = load_jsonl_examples(p)
    assert ex.queries == ["a", "b"] and ex.negatives == [["n", "m"], ["k"]]
    p.write_text(json.dumps({"anchor": "a", "positive": "x", "negative_1": ""}) + "\n")
    with pytest.raises(DataError, match=r"pairs.jsonl, line 1: field 'negative_1' must be a non-empty string"):
        load_jsonl_examples(p)
    with pytest.raises(DataError, match=r"x, row 4: field 'query' is missing \(the query: 'query' or 'anchor'; have 'positive'\)"):
        check_example(Path("x"), 4, {"positive": "p"}, unit="row")


def test_msmarco_offline_error_for_colbert_does_not_promise_an_unreadable_copy():
    code = "from encoders.training.data import load_msmarco\nload_msmarco('colbert')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode != 0 and "lightonai/ms-marco-en-bge" in r.stderr
    assert "need the hub's queries and documents" in r.stderr and "triplet-hard" in r.stderr and "--train-data DIR" in r.stderr
