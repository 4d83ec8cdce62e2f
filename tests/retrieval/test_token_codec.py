"""Compressed token stores: the codec is trained by content, codes decode close to the tokens, every reader sees floats, and ranking barely moves."""

import json

import numpy as np
import pytest

from retrieval.maxsim import pad_queries
from retrieval.multivector import ExactIndex, FaissTokenIndex
from retrieval.token_codec import FORMS, check_form, factory_for, nlist_for, sample_order
from retrieval.token_store import TokenStore

DIM = 32


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _docs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    words = _unit(rng.standard_normal((300, DIM)))  # tokens cluster around a vocabulary, as real ones do
    return [_unit(words[rng.integers(0, 300, int(rng.integers(5, 40)))] + 0.2 * rng.standard_normal((1, DIM))) for _ in range(n)]


def _build(folder, docs, form, shard_size=64, order=None):
    order = list(range(len(docs))) if order is None else order
    ids = [f"d{i}" for i in order]
    texts = [f"text {i}" for i in order]  # the "encoder" maps a text to its document's tokens
    return TokenStore(folder, shard_size=shard_size, form=form).build(ids, texts, lambda ts: [docs[int(t.split()[1])] for t in ts])


def test_factory_and_sample_order():
    assert nlist_for(1_000_000) == 1024 and nlist_for(100) == 2
    assert factory_for("residual-4bit", 1_000_000, 128) == "IVF1024,SQ4" and factory_for("residual-pq", 1_000_000, 128) == "IVF1024,PQ32x8"
    assert factory_for("fp16", 10, 128) is None and factory_for("IVF{nlist},SQ8", 4096, 16) == "IVF64,SQ8"
    texts = ["a", "b", "c", "d"]
    order = sample_order(texts)
    assert [texts[i] for i in order] == [texts[::-1][i] for i in sample_order(texts[::-1])]  # by content, not position
    with pytest.raises(ValueError, match="unknown --token-store 'IVF9,NOPE'"):
        check_form("IVF9,NOPE")
    for form in FORMS:
        check_form(form)


@pytest.mark.parametrize("form", [f for f in FORMS if f != "fp16"])
def test_compressed_store_decodes_close_and_reads_like_fp16(tmp_path, form):
    docs = _docs()
    fp = _build(tmp_path / "fp16", docs, "fp16")
    st = _build(tmp_path / form, docs, form)
    meta = json.loads((st.folder / "codec.json").read_text())
    assert meta["form"] == form and st.bytes_per_token() == meta["code_size"] < fp.bytes_per_token()
    assert st.num_tokens == fp.num_tokens and st.dim == DIM and (st.lengths == fp.lengths).all()
    assert st.nbytes() < fp.nbytes()
    err = np.abs(st.doc(7) - fp.doc(7).astype(np.float32)).max()
    assert 0 < err < {"residual-8bit": 0.02, "residual-4bit": 0.1, "residual-pq": 0.3}[form]
    got, lengths = st.gather(np.array([9, 3]))
    assert got.dtype == np.float32 and np.array_equal(got[: lengths[0]], st.doc(9))
    assert np.array_equal(np.concatenate([t for _, t, _ in st.chunks(100)]), np.concatenate([st.shard_tokens(s) for s in range(st.num_shards_open)]))
    # reopened from disk: the same codes, the same vectors
    again = TokenStore(st.folder, shard_size=64, form=form).open()
    assert np.array_equal(again.doc(7), st.doc(7))


def test_the_codec_depends_on_the_content_not_the_order_or_the_ids(tmp_path):
    docs = _docs(300)
    a = _build(tmp_path / "a", docs, "residual-4bit")
    perm = list(np.random.default_rng(3).permutation(len(docs)))
    b = _build(tmp_path / "b", docs, "residual-4bit", shard_size=50, order=perm)
    for i in (0, 17, 299):
        np.testing.assert_array_equal(a.doc(i), b.doc(perm.index(i)))


def test_ranking_from_a_compressed_store_is_close_to_fp16(tmp_path):
    docs = _docs(400)
    rng = np.random.default_rng(1)
    targets = list(range(0, 400, 20))
    queries = [_unit(docs[t][rng.choice(len(docs[t]), 8)] + 0.05 * rng.standard_normal((8, DIM))) for t in targets]
    fp, st = _build(tmp_path / "fp", docs, "fp16"), _build(tmp_path / "r4", docs, "residual-4bit")
    ref, got = ExactIndex(), ExactIndex()
    ref.build(fp), got.build(st)
    _, I_ref = ref.search(queries, 10)
    _, I_got = got.search(queries, 10)
    assert [row[0] for row in I_got] == targets  # the source document still first
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I_ref, I_got)]) >= 0.8
    faiss_index = FaissTokenIndex(k_tokens=16, n_rerank=64, omp_threads=1)
    faiss_index.build(st)
    _, I_f = faiss_index.search(queries, 10)
    assert [row[0] for row in I_f] == targets
    q, m = pad_queries(queries)
    assert q.shape[0] == len(targets) and m.all()


def test_a_killed_compressed_build_resumes_with_the_same_codec(tmp_path):
    docs = _docs(200)
    st = _build(tmp_path / "s", docs, "residual-pq")
    codec = (st.folder / "codec.faiss").read_bytes()
    before = st.doc(150).copy()
    (st.folder / "tokens-00002.npy").unlink()
    (st.folder / "meta.json").unlink()
    again = _build(tmp_path / "s", docs, "residual-pq")
    assert again.encoded_shards == 1 and (again.folder / "codec.faiss").read_bytes() == codec
    np.testing.assert_array_equal(again.doc(150), before)
    with pytest.raises(RuntimeError, match="codec for form 'residual-pq'"):
        TokenStore(st.folder, shard_size=64, form="residual-4bit").build([f"d{i}" for i in range(200)], [f"text {i}" for i in range(200)], lambda ts: [docs[int(t.split()[1])] for t in ts])
