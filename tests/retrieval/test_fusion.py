"""Fusion on hand-made runs with fused rankings worked out by hand (ties included), and agreement with ranx."""

from __future__ import annotations

import math

import pytest

from retrieval.fusion import METHODS, NORMS, fuse, normalize, parse_fusion
from retrieval.metrics import trec_order

# Two runs over q1 (shared), q2 (A only) and q3 (B only). In A, b and c tie; e is only in B, c only in A.
A = {"q1": {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}, "q2": {"x": 1.0}}
B = {"q1": {"b": 4.0, "e": 3.0, "d": 1.0, "a": 0.0}, "q3": {"y": 2.0, "z": 1.0}}


def order(run, qid="q1"):
    return list(run[qid])


# ---------------------------------------------------------------- ties and ranks


def test_trec_eval_order_is_score_then_doc_id_descending():
    assert [d for d, _ in trec_order({"b": 2.0, "c": 2.0, "a": 3.0, "d1": 1.0, "d10": 1.0, "d9": 1.0})] == ["a", "c", "b", "d9", "d10", "d1"]


def test_rrf_hand_computed_with_ties_in_a_run_and_in_the_fused_scores():
    # A's ranks: a 1, b and c 2.5 (tied at 2.0: they share the mean of ranks 2 and 3, whatever their ids), d 4.
    # B's ranks: b 1, e 2, d 3, a 4. With k = 1:
    #   a = 1/2 + 1/5, b = 1/3.5 + 1/2, c = 1/3.5, d = 1/5 + 1/4, e = 1/3
    fused = fuse([A, B], "rrf", k=1)
    q1 = fused["q1"]
    assert q1 == pytest.approx({"a": 1 / 2 + 1 / 5, "b": 1 / 3.5 + 1 / 2, "c": 1 / 3.5, "d": 1 / 5 + 1 / 4, "e": 1 / 3}, rel=0, abs=1e-15)
    assert order(fused) == ["b", "a", "d", "e", "c"]
    renamed = fuse([{"q1": {"a": 3.0, "zz": 2.0, "c": 2.0, "d": 1.0}}, {"q1": {"zz": 4.0, "e": 3.0, "d": 1.0, "a": 0.0}}], "rrf", k=1)["q1"]
    assert renamed["zz"] == q1["b"] and renamed["c"] == q1["c"]  # b renamed zz (now first in id order among the tied): same scores
    # queries present in one run only are fused from that run
    assert fused["q2"] == {"x": 1 / 2}
    assert fused["q3"] == {"y": 1 / 2, "z": 1 / 3}
    assert list(fused) == ["q1", "q2", "q3"]


def test_rrf_default_k_is_60():
    q1 = fuse([A, B], "rrf")["q1"]
    assert q1["a"] == pytest.approx(1 / 61 + 1 / 64, abs=1e-15)
    assert q1["e"] == pytest.approx(1 / 62, abs=1e-15) and q1["c"] == pytest.approx(1 / 62.5, abs=1e-15)  # c shares rank 2.5 with b in A


def test_rrf_ties_do_not_depend_on_dict_order():
    flipped = {"q1": dict(reversed(list(A["q1"].items())))}
    assert fuse([A, B], "rrf") == fuse([flipped | {"q2": A["q2"]}, B], "rrf")


# ---------------------------------------------------------------- normalisation


def test_normalize_hand_computed():
    run = {"q1": {"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}}
    assert normalize(run, "minmax") == {"q1": {"a": 1.0, "b": 0.5, "c": 0.5, "d": 0.0}}
    assert normalize(run, "max") == {"q1": {"a": 1.0, "b": 2 / 3, "c": 2 / 3, "d": 1 / 3}}
    # mean 2, population variance (1 + 0 + 0 + 1) / 4 = 0.5 (the sample variance would be 2/3)
    r2 = math.sqrt(2)
    assert normalize(run, "zscore")["q1"] == pytest.approx({"a": r2, "b": 0.0, "c": 0.0, "d": -r2}, rel=0, abs=1e-12)
    assert normalize(run, "none") == run


@pytest.mark.parametrize("norm", ["minmax", "zscore"])
def test_all_equal_scores_and_a_single_doc_normalise_to_zero(norm):
    run = {"same": {"a": 5.0, "b": 5.0, "c": 5.0}, "one": {"x": -2.5}, "empty": {}}
    assert normalize(run, norm) == {"same": {"a": 0.0, "b": 0.0, "c": 0.0}, "one": {"x": 0.0}, "empty": {}}


def test_max_norm_divides_by_a_floor_of_1e9_when_the_best_score_is_not_positive():
    # ranx's max norm: s / max(max_s, 1e-9). Meant for non-negative scores; matched, not "fixed".
    assert normalize({"q": {"a": 5.0, "b": 5.0}, "one": {"x": 2.0}}, "max") == {"q": {"a": 1.0, "b": 1.0}, "one": {"x": 1.0}}
    assert normalize({"q": {"a": -1.0, "b": -2.0}}, "max") == {"q": {"a": -1.0 / 1e-9, "b": -2.0 / 1e-9}}


def test_unknown_norm_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown normalisation 'min-max'; did you mean 'minmax'\? \(valid: minmax, zscore, max, none\)"):
        normalize(A, "min-max")
    assert list(NORMS) == ["minmax", "zscore", "max", "none"]


# ---------------------------------------------------------------- score fusion, by hand

# Normalised q1 (minmax): A: a 1, b .5, c .5, d 0.   B (min 0, max 4): b 1, e .75, d .25, a 0.


def test_combsum_minmax_hand_computed():
    fused = fuse([A, B], "combsum")  # minmax is the default
    assert fused["q1"] == {"b": 1.5, "a": 1.0, "e": 0.75, "c": 0.5, "d": 0.25}
    assert order(fused) == ["b", "a", "e", "c", "d"]
    assert fused["q2"] == {"x": 0.0} and fused["q3"] == {"y": 1.0, "z": 0.0}  # single-run queries, single doc -> 0


def test_combmnz_multiplies_by_the_number_of_runs_that_retrieved_the_doc():
    fused = fuse([A, B], "combmnz", norm="minmax")
    # a, b, d are in both runs (x2); c and e in one (x1). c and d now tie at 0.5: d before c.
    assert fused["q1"] == {"b": 3.0, "a": 2.0, "e": 0.75, "d": 0.5, "c": 0.5}
    assert order(fused) == ["b", "a", "e", "d", "c"]
    assert fused["q3"] == {"y": 1.0, "z": 0.0}


def test_wsum_weights_each_runs_normalised_scores():
    fused = fuse([A, B], "wsum", weights=[0.25, 0.75])
    # a .25, b .125 + .75, c .125, d 0 + .1875, e .5625
    assert fused["q1"] == {"b": 0.875, "e": 0.5625, "a": 0.25, "d": 0.1875, "c": 0.125}
    assert fused["q2"] == {"x": 0.0} and fused["q3"] == {"y": 0.75, "z": 0.0}  # not reweighted when a run lacks the query


def test_combsum_under_max_zscore_and_none():
    q1 = fuse([A, B], "combsum", norm="max")["q1"]
    assert q1 == pytest.approx({"a": 1.0, "b": 2 / 3 + 1, "c": 2 / 3, "d": 1 / 3 + 1 / 4, "e": 3 / 4}, rel=0, abs=1e-12)
    assert list(q1) == ["b", "a", "e", "c", "d"]
    # zscore: A mean 2, std sqrt(.5); B mean 2, std sqrt(2.5). A doc missing from a run adds 0 (that run's mean).
    sa, sb = math.sqrt(0.5), math.sqrt(2.5)
    q1 = fuse([A, B], "combsum", norm="zscore")["q1"]
    assert q1 == pytest.approx({"a": 1 / sa - 2 / sb, "b": 0 + 2 / sb, "c": 0.0, "d": -1 / sa - 1 / sb, "e": 1 / sb}, rel=0, abs=1e-12)
    assert list(q1) == ["b", "e", "a", "c", "d"]  # 1.26, 0.63, 0.15, 0, -2.05
    # none: raw sums; a and e tie at 3 (e first), c and d at 2 (d first)
    q1 = fuse([A, B], "combsum", norm="none")["q1"]
    assert q1 == {"b": 6.0, "e": 3.0, "a": 3.0, "d": 2.0, "c": 2.0}
    assert list(q1) == ["b", "e", "a", "d", "c"]


def test_depth_keeps_the_best_docs_of_each_query_ties_in_trec_order():
    fused = fuse([A, B], "combsum", norm="none", depth=2)
    assert fused == {"q1": {"b": 6.0, "e": 3.0}, "q2": {"x": 1.0}, "q3": {"y": 2.0, "z": 1.0}}
    assert fuse([A, B], "rrf", k=1, depth=4)["q1"] == {"b": 1 / 3.5 + 1 / 2, "a": 1 / 2 + 1 / 5, "d": 1 / 5 + 1 / 4, "e": 1 / 3}


def test_three_runs_and_an_empty_query():
    c = {"q1": {"c": 9.0}, "q4": {}}
    fused = fuse([A, B, c], "combmnz", norm="none")
    assert fused["q1"]["c"] == (2.0 + 9.0) * 2 and fused["q1"]["b"] == (2.0 + 4.0) * 2
    assert fused["q4"] == {}


def test_inputs_are_not_modified():
    a, b = {q: dict(d) for q, d in A.items()}, {q: dict(d) for q, d in B.items()}
    for method in METHODS:
        fuse([a, b], method, weights=[1, 2] if method == "wsum" else None)
    assert a == A and b == B


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "rff"}, r"unknown fusion method 'rff'; did you mean 'rrf'\? \(valid: rrf, combsum, combmnz, wsum\)"),
        ({"method": "combsum", "norm": "l2"}, r"unknown normalisation 'l2'.*valid: minmax, zscore, max, none"),
        ({"method": "rrf", "weights": [0.3, 0.7]}, r"rrf takes no weights.*wsum"),
        ({"method": "combsum", "weights": [0.3, 0.7]}, r"combsum takes no weights"),
        ({"method": "combmnz", "weights": [0.3, 0.7]}, r"combmnz takes no weights"),
        ({"method": "wsum"}, r"wsum needs weights, one per run \(2\)"),
        ({"method": "wsum", "weights": [1.0]}, r"1 weights for 2 runs"),
        ({"method": "wsum", "weights": [1.0, math.nan]}, r"finite"),
        ({"method": "rrf", "norm": "minmax"}, r"rrf fuses ranks.*norm must be 'none'"),
        ({"method": "rrf", "k": -1}, r"k must be a finite number >= 0"),
        ({"method": "rrf", "depth": 0}, r"depth must be a positive int"),
    ],
)
def test_fuse_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fuse([A, B], **kwargs)


def test_fuse_needs_two_runs_and_finite_scores():
    with pytest.raises(ValueError, match="at least two runs, got 1"):
        fuse([A], "rrf")
    with pytest.raises(ValueError, match=r"run 1, query 'q1': score of 'b' is not finite \(nan\)"):
        fuse([A, {"q1": {"b": math.nan}}], "combsum")


def test_rrf_accepts_norm_none_explicitly():
    assert fuse([A, B], "rrf", norm="none") == fuse([A, B], "rrf")


# ---------------------------------------------------------------- the CLI syntax


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("bm25+minilm", [("bm25", None), ("minilm", None)]),
        ("bm25*0.3+minilm*0.7", [("bm25", 0.3), ("minilm", 0.7)]),
        ("bm25*1+minilm*2e-1", [("bm25", 1.0), ("minilm", 0.2)]),
        ("models/colbert-v2.0+sentence-transformers/all-MiniLM-L6-v2+hf:org/m.v1", [("models/colbert-v2.0", None), ("sentence-transformers/all-MiniLM-L6-v2", None), ("hf:org/m.v1", None)]),
        (" bm25 * 0.5 + minilm*0.5", [("bm25", 0.5), ("minilm", 0.5)]),
        ("bm25", None),
        ("org/model-v1.5", None),
    ],
)
def test_parse_fusion(spec, expected):
    assert parse_fusion(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bm25*x+minilm*0.7", r"weight of 'bm25\*x' is not a number: 'x'"),
        ("bm25*0.3+minilm", r"every part a weight or none \(unweighted: \['minilm'\]\)"),
        ("bm25+minilm*0.7", r"every part a weight or none \(unweighted: \['bm25'\]\)"),
        ("bm25*inf+minilm*1", r"weight of 'bm25\*inf' must be finite"),
        ("bm25*+minilm*1", r"weight of 'bm25\*' is not a number: ''"),
        ("bm25+", r"part '' has no model name"),
        ("+minilm", r"part '' has no model name"),
        ("bm25++minilm", r"part '' has no model name"),
        ("*0.5+minilm*0.5", r"part '\*0.5' has no model name"),
        ("bm25+bm25", r"'bm25' appears twice"),
    ],
)
def test_parse_fusion_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_fusion(spec)


def test_an_existing_path_with_a_plus_is_not_a_fusion(tmp_path, monkeypatch):
    (tmp_path / "my+model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_fusion("my+model") is None
    assert parse_fusion(str(tmp_path / "my+model")) is None
    assert parse_fusion("my+other") == [("my", None), ("other", None)]
