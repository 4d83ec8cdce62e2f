"""Quirks from the data: the self-hit rule on hand-made corpora (never from a name)."""

from benchmarks.quirks import data_quirks, decide_self_hits

CORPUS = {"a": {"title": "Vegetarian", "text": "being vegetarian helps the environment"}, "b": {"title": "", "text": "meat is murder"}, "c": {"title": "", "text": ""}}


def test_same_items_under_shared_ids_drop_self_hits():
    rule = decide_self_hits(CORPUS, {"a": "Vegetarian being vegetarian helps the environment"}, {"a": {"b": 1}})
    assert rule.drop and (rule.shared_ids, rule.same_text) == (1, 1)


def test_no_shared_ids_or_self_judged_or_different_texts_keep_them():
    assert not decide_self_hits(CORPUS, {"q1": "vegetarian"}, {"q1": {"a": 1}}).drop
    judged = decide_self_hits(CORPUS, {"a": "being vegetarian helps the environment"}, {"a": {"a": 1}})
    assert not judged.drop and "relevant to themselves" in judged.reason
    coincidence = decide_self_hits(CORPUS, {"a": "what is a cell?", "b": "protein folding"}, {"a": {"b": 1}, "b": {"a": 1}})
    assert not coincidence.drop and coincidence.shared_ids == 2 and coincidence.same_text == 0


def test_flag_forces_either_way():
    assert decide_self_hits(CORPUS, {"q1": "x"}, {"q1": {"a": 1}}, "on").drop
    assert not decide_self_hits(CORPUS, {"a": "being vegetarian helps the environment"}, {"a": {"b": 1}}, "off").drop


def test_data_quirks_counts():
    assert data_quirks(CORPUS, {"q": "x"}, {"q": {"a": 1, "zz": 1}}) == {"unknown_qrels_docs": 1, "empty_documents": 1, "judged_queries": 1}
