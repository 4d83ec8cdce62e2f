"""FAISS indexes against brute force, run construction, and the self-hit rule."""

import faiss
import numpy as np
import pytest

from retrieval import dense


def synthetic(n=2000, nq=50, d=32, seed=0):
    """Clustered vectors (50 centres + noise), like real embeddings; queries are perturbed database points."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d)).astype(np.float32)
    xb = centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    xq = xb[rng.integers(0, n, nq)] + 0.1 * rng.standard_normal((nq, d)).astype(np.float32)
    return xb, xq


def test_flat_equals_numpy_brute_force():
    xb, xq = synthetic()
    D, I = dense.search(dense.build_index(xb, "flat"), xq, 10)
    ref = np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :10]
    assert (I == ref).all()
    np.testing.assert_allclose(D, np.take_along_axis(xq @ xb.T, ref, axis=1), rtol=1e-5)


@pytest.mark.parametrize("spec, min_recall", [("hnsw", 0.95), ("ivfpq", 0.3), ("IVF16,Flat", 0.6), ("HNSW16,Flat", 0.9)])
def test_approximate_indexes_agree_with_flat(spec, min_recall):
    xb, xq = synthetic()
    _, I_exact = dense.search(dense.build_index(xb, "flat"), xq, 10)
    _, I = dense.search(dense.build_index(xb, spec), xq, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, I_exact)])
    assert recall >= min_recall, f"{spec}: recall@10 vs flat {recall:.3f}"  # random would be 0.005


def test_ivf_with_all_lists_probed_is_exact():
    xb, xq = synthetic()
    index = dense.build_index(xb, "IVF16,Flat")
    dense.set_search_params(index, nprobe=16)
    _, I = dense.search(index, xq, 10)
    _, I_exact = dense.search(dense.build_index(xb, "flat"), xq, 10)
    assert (I == I_exact).all()


def test_factory_strings():
    assert dense.factory_string("flat", 100, 384) == "Flat"
    assert dense.factory_string("hnsw", 100, 384) == "HNSW32"
    assert dense.factory_string("ivfpq", 10000, 384) == "IVF256,PQ96x8"
    assert dense.factory_string("ivfpq", 1000, 384) == "IVF25,PQ96x4"  # capped so each centroid gets >= 39 points
    assert dense.factory_string("OPQ16,IVF64,PQ16", 1000, 384) == "OPQ16,IVF64,PQ16"


def test_to_run_and_self_hit_rule():
    D = np.array([[0.9, 0.8, 0.7]], dtype=np.float32)
    I = np.array([[1, 0, 2]])
    doc_ids, qids = ["q1", "dA", "dB"], ["q1"]
    assert dense.to_run(D, I, qids, doc_ids, k=2) == {"q1": {"dA": pytest.approx(0.9), "q1": pytest.approx(0.8)}}
    run = dense.to_run(D, I, qids, doc_ids, ignore_identical_ids=True, k=2)
    assert run == {"q1": {"dA": pytest.approx(0.9), "dB": pytest.approx(0.7)}}


def test_missing_hits_are_skipped():
    run = dense.to_run(np.array([[1.0, -3e38]], dtype=np.float32), np.array([[0, -1]]), ["q"], ["d0"])
    assert run == {"q": {"d0": 1.0}}


def test_index_save_load_roundtrip(tmp_path):
    xb, xq = synthetic(n=500)
    index = dense.build_index(xb, "hnsw")
    dense.save_index(index, tmp_path / "x.faiss")
    loaded = dense.load_index(tmp_path / "x.faiss")
    assert faiss.downcast_index(loaded).hnsw.efSearch == 128
    assert (dense.search(loaded, xq, 5)[1] == dense.search(index, xq, 5)[1]).all()
