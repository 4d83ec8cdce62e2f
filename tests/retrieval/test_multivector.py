"""Token store (sharded, resumable, read by offset) and the exact / faiss / plaid backends on a synthetic corpus with a known answer."""

import numpy as np
import pytest

from retrieval.maxsim import maxsim, pad_queries
from retrieval.multivector import ExactIndex, FaissTokenIndex, PlaidIndex, default_token_factory, make_index
from retrieval.token_store import TokenStore

DIM = 32


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n_docs=300, seed=0):
    rng = np.random.default_rng(seed)
    return [_unit(rng.standard_normal((int(rng.integers(5, 30)), DIM))) for _ in range(n_docs)]


def _store(tmp_path, docs, shard_size=64):
    ids = [f"d{i}" for i in range(len(docs))]
    by_id = dict(zip(ids, docs))
    calls = []

    def encode(texts):  # "texts" are the ids here: the fake encoder looks the embeddings up
        calls.append(len(texts))
        return [by_id[t] for t in texts]

    store = TokenStore(tmp_path / "store", shard_size=shard_size).build(ids, ids, encode)
    return store, ids, encode, calls


def test_store_round_trip_float16_and_offsets(tmp_path):
    docs = _corpus(150)
    store, ids, _, calls = _store(tmp_path, docs)
    assert calls == [64, 64, 22] and store.encoded_shards == 3 and store.complete
    assert len(store) == 150 and store.num_tokens == sum(len(d) for d in docs)
    assert store.shard_tokens(0).dtype == np.float16 and store.bytes_per_token() == 2 * DIM
    assert not any("tokens-" in line for line in open("/proc/self/maps")), "token files are read by offset, never mapped"
    for i in (0, 63, 64, 149):
        np.testing.assert_array_equal(store.doc(i), docs[i].astype(np.float16))
    got, lengths = store.gather(np.array([149, 3]))
    assert got.shape == (len(docs[149]) + len(docs[3]), DIM) and lengths.tolist() == [len(docs[149]), len(docs[3])]
    assert store.token_to_doc(np.array([0, len(docs[0]) - 1, len(docs[0]), store.num_tokens - 1])).tolist() == [0, 0, 1, 149]
    # chunks: whole documents, in order, covering everything, each chunk within one shard
    seen = []
    for first, tok, lens in store.chunks(max_tokens=100):
        assert len(tok) == lens.sum() and (len(tok) <= 100 or len(lens) == 1)
        assert first // 64 == (first + len(lens) - 1) // 64
        seen.extend(range(first, first + len(lens)))
    assert seen == list(range(150))


def test_store_resumes_missing_shard_only(tmp_path):
    docs = _corpus(150)
    store, ids, encode, calls = _store(tmp_path, docs)
    (store.folder / "tokens-00001.npy").unlink()  # as if killed while writing shard 1
    calls.clear()
    again = TokenStore(store.folder, shard_size=64).build(ids, ids, encode)
    assert calls == [64] and again.encoded_shards == 1
    np.testing.assert_array_equal(again.doc(100), docs[100].astype(np.float16))
    calls.clear()
    assert TokenStore(store.folder, shard_size=64).build(ids, ids, encode).encoded_shards == 0 and calls == []
    with pytest.raises(RuntimeError, match="cached ids differ"):
        TokenStore(store.folder, shard_size=64).build(ids[::-1], ids[::-1], encode)


def _queries(docs, targets, seed=1):
    """Query i = 8 tokens of doc targets[i] plus a little noise: exact MaxSim ranks that doc first."""
    rng = np.random.default_rng(seed)
    return [_unit(docs[t][rng.choice(len(docs[t]), 8)] + 0.05 * rng.standard_normal((8, DIM))) for t in targets]


def test_exact_matches_padded_maxsim_and_finds_the_source(tmp_path):
    docs = _corpus(300)
    store, *_ = _store(tmp_path, docs)
    targets = [5, 64, 128, 299, 17]
    queries = _queries(docs, targets)
    index = ExactIndex(chunk_tokens=200, query_batch=2)
    index.build(store)
    D, I = index.search(queries, 10)
    assert D.shape == I.shape == (5, 10)
    assert I[:, 0].tolist() == targets
    # against maxsim() on padded fp16-rounded documents
    import torch

    L = max(len(d) for d in docs)
    d = torch.zeros(len(docs), L, DIM)
    m = torch.zeros(len(docs), L, dtype=torch.bool)
    for i, x in enumerate(docs):
        d[i, : len(x)], m[i, : len(x)] = torch.from_numpy(x.astype(np.float16).astype(np.float32)), True
    q, qm = pad_queries(queries)
    ref = maxsim(q, d, qm, m).numpy()
    np.testing.assert_array_equal(I, np.argsort(-ref, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(D, -np.sort(-ref, axis=1)[:, :10], rtol=1e-5, atol=1e-5)


def test_faiss_agrees_with_exact(tmp_path):
    docs = _corpus(300)
    store, *_ = _store(tmp_path, docs)
    targets = list(range(0, 300, 15))
    queries = _queries(docs, targets)
    exact = ExactIndex()
    exact.build(store)
    De, Ie = exact.search(queries, 10)
    # probe every list and rescore every candidate: only PQ's approximation in the token search can lose a document
    index = FaissTokenIndex(k_tokens=64, nprobe=1024, n_rerank=10_000, omp_threads=1, cache_path=tmp_path / "tok.faiss")
    index.build(store)
    assert index.factory_used.startswith("IVF") and ",PQ" in index.factory_used and not index.loaded_from_cache
    Df, If = index.search(queries, 10)
    assert If[:, 0].tolist() == targets
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(If, Ie)])
    assert overlap >= 0.9, overlap
    # every returned score is the exact MaxSim of that document
    sc = {(qi, int(i)): s for qi in range(len(queries)) for s, i in zip(De[qi], Ie[qi])}
    for qi in range(len(queries)):
        for s, i in zip(Df[qi], If[qi]):
            if (qi, int(i)) in sc:
                assert abs(s - sc[qi, int(i)]) < 1e-4
    # cached: loaded, same answers
    again = FaissTokenIndex(k_tokens=64, nprobe=1024, n_rerank=10_000, omp_threads=1, cache_path=tmp_path / "tok.faiss")
    again.build(store)
    assert again.loaded_from_cache
    np.testing.assert_array_equal(again.search(queries, 10)[1], If)


def test_faiss_any_factory_string(tmp_path):
    docs = _corpus(100)
    store, *_ = _store(tmp_path, docs)
    index = FaissTokenIndex(factory="Flat", k_tokens=8, n_rerank=10)
    index.build(store)
    D, I = index.search(_queries(docs, [3, 40]), 5)
    assert index.index.ntotal == store.num_tokens and I[:, 0].tolist() == [3, 40]


def test_default_factory():
    assert default_token_factory(1_220_000, 128) == "IVF1024,PQ16x8"
    assert default_token_factory(100, 128) == "IVF2,PQ16x8"  # <= n/39 centroids


def test_registry_lists_names():
    with pytest.raises(ValueError, match="exact, faiss, plaid"):
        make_index("annoy")


@pytest.mark.slow  # fast-plaid's k-means takes ~10 s idle, ~50 s on a loaded 2-core box, even for 60 documents
def test_plaid_finds_the_source(tmp_path):
    docs = _corpus(60)
    store, *_ = _store(tmp_path, docs)
    targets = [0, 37, 59]
    index = PlaidIndex(folder=tmp_path / "plaid" / "idx")
    index.build(store)
    assert not index.loaded_from_cache and (tmp_path / "plaid" / "idx" / "done.json").is_file()
    D, I = index.search(_queries(docs, targets), 5)
    assert I[:, 0].tolist() == targets and D.shape == (3, 5)
    again = PlaidIndex(folder=tmp_path / "plaid" / "idx")
    again.build(store)
    assert again.loaded_from_cache
