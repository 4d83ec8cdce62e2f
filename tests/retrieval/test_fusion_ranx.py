"""Fusion agrees with ranx to 1e-9 (slow: ranx's numba start-up costs ~20 s warm, ~2 min on a fresh install)."""

from __future__ import annotations
import itertools
import random
import pytest
from retrieval.fusion import NORMS, fuse, normalize
from retrieval.metrics import trec_order

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- agreement with ranx

RANX_METHOD = {"rrf": "rrf", "combsum": "sum", "combmnz": "mnz", "wsum": "wsum"}
RANX_NORM = {"minmax": "min-max", "zscore": "zmuv", "max": "max", "none": None}
WEIGHTS = [0.2, 0.5, 0.3]
TOL = 1e-9


def random_runs(seed=0, n_runs=3, n_queries=20, n_docs=50, pool=80):
    """Runs over the same queries, 50 docs each drawn from 80 (so docs in one, two or three runs), ties injected.

    Scores are rounded to one decimal (many ties); q0 has all-equal scores in every run; q1 has
    one document per run.
    """
    rng = random.Random(seed)
    runs = []
    for r in range(n_runs):
        run = {}
        for q in range(n_queries):
            docs = rng.sample(range(pool), 1 if q == 1 else n_docs)
            run[f"q{q}"] = {f"d{d}": 2.5 if q == 0 else round(rng.uniform(0.1, 10.0 * (r + 1)), 1) for d in docs}
        runs.append(run)
    return runs


def untie(run):
    """The same ranking as scores with no ties (the rank order of ``trec_order``): ranx ranks ties in unspecified order."""
    return {q: {d: float(len(docs) - i) for i, (d, _) in enumerate(trec_order(docs))} for q, docs in run.items()}


def max_abs_diff(ours, theirs):
    assert ours.keys() == theirs.keys()
    diff = 0.0
    for q in ours:
        assert ours[q].keys() == theirs[q].keys(), q
        diff = max([diff] + [abs(ours[q][d] - theirs[q][d]) for d in ours[q]])
    return diff


@pytest.fixture(scope="module")
def ranx():
    return pytest.importorskip("ranx")


@pytest.fixture(scope="module")
def runs():
    return random_runs()


@pytest.fixture(scope="module")
def ranx_runs(ranx, runs):
    """The runs as ``ranx.Run``s, built once (ranx's fusion never modifies them), as given and untied."""
    return {"given": [ranx.Run.from_dict(r) for r in runs], "untied": [ranx.Run.from_dict(untie(r)) for r in runs]}


COMBINATIONS = [("rrf", "none")] + [(m, n) for m, n in itertools.product(["combsum", "combmnz", "wsum"], NORMS)]


@pytest.mark.parametrize("method, norm", COMBINATIONS)
def test_agrees_with_ranx(ranx, runs, ranx_runs, method, norm):
    weights = WEIGHTS if method == "wsum" else None
    ours = fuse([untie(r) for r in runs] if method == "rrf" else runs, method, norm=norm, weights=weights)
    given = ranx_runs["untied" if method == "rrf" else "given"]  # rrf: runs without ties for both (ties: ours share a mean rank, ranx's are unspecified)
    params = {"weights": WEIGHTS} if method == "wsum" else {"k": 60} if method == "rrf" else {}
    theirs = ranx.fuse(runs=given, norm=RANX_NORM[norm], method=RANX_METHOD[method], params=params)
    assert max_abs_diff(ours, theirs.to_dict()) <= TOL


def test_rrf_agrees_with_ranx_on_untied_runs_without_help(ranx):
    runs = [{q: {d: s + 1e-6 * i for i, (d, s) in enumerate(docs.items())} for q, docs in r.items()} for r in random_runs(seed=1)]
    ours = fuse(runs, "rrf", k=10)
    theirs = ranx.fuse(runs=[ranx.Run.from_dict(r) for r in runs], norm=None, method="rrf", params={"k": 10})
    assert max_abs_diff(ours, theirs.to_dict()) <= TOL


@pytest.mark.parametrize("norm", NORMS)
def test_normalize_agrees_with_ranx_on_edge_cases(ranx, norm):
    # 3-character ids, as random_runs': ranx.Run.from_dict compiles again for each id length (numpy "<U{n}")
    run = {"one": {"d01": 3.0}, "equal": {"d01": 2.0, "d02": 2.0}, "negative": {"d01": -1.0, "d02": -4.0}, "mixed": {"d01": -1.0, "d02": 0.5, "d03": 4.0}}
    other = {q: {"d99": 1.0} for q in run}
    theirs = ranx.fuse(runs=[ranx.Run.from_dict(run), ranx.Run.from_dict(other)], norm=RANX_NORM[norm], method="wsum", params={"weights": [1.0, 0.0]})
    ours = fuse([run, other], "wsum", norm=norm, weights=[1.0, 0.0])
    normalised = normalize(run, norm)
    for q, docs in run.items():  # values up to 4e9 (max norm of negative scores): compare relatively
        assert ours[q] == pytest.approx(theirs[q], rel=1e-12, abs=TOL), q
        assert {d: ours[q][d] for d in docs} == normalised[q]


def test_ranx_ranks_rrf_ties_in_dict_order_we_do_not(ranx):
    # Why the rrf comparison above unties first: ranx's rank of tied docs follows dict insertion order.
    ab, ba, other = {"q": {"d0a": 1.0, "d0b": 1.0}}, {"q": {"d0b": 1.0, "d0a": 1.0}}, {"q": {"d0c": 1.0}}
    rx = [ranx.fuse(runs=[ranx.Run.from_dict(r), ranx.Run.from_dict(other)], norm=None, method="rrf").to_dict()["q"] for r in (ab, ba)]
    assert rx[0]["d0a"] > rx[0]["d0b"] and rx[1]["d0b"] > rx[1]["d0a"]
    assert fuse([ab, other], "rrf") == fuse([ba, other], "rrf")
    assert fuse([ab, other], "rrf")["q"]["d0b"] == fuse([ab, other], "rrf")["q"]["d0a"] == 1 / 61.5  # tied: the mean of ranks 1 and 2
