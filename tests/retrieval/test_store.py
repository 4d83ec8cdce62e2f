"""Atomic writes and the resumable sharded embedding store."""

import json
import os

import numpy as np
import pytest

from retrieval.store import EmbeddingStore

from retrieval.io import atomic_write, atomic_write_json, cache_key


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"a": 1})

    def dies_mid_write(f):
        f.write(b'{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(p, dies_mid_write)
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]  # no temp left behind


def test_cache_key_is_stable_and_sensitive():
    assert cache_key(a=1, b="x") == cache_key(b="x", a=1)
    assert cache_key(a=1, b="x") != cache_key(a=2, b="x")


def fake_encoder(calls):
    def encode(texts):
        calls.append(len(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    return encode


def test_store_resumes_only_missing_shards(tmp_path):
    ids = [f"d{i}" for i in range(10)]
    texts = ["a" * i for i in range(10)]
    store = EmbeddingStore(tmp_path / "s", shard_size=4)

    def dies_on_second_shard(texts, calls=[]):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return fake_encoder([])(texts)

    with pytest.raises(KeyboardInterrupt):
        store.build(ids, texts, dies_on_second_shard)
    assert store.shard_path(0).is_file() and not store.shard_path(1).is_file() and not store.complete
    (tmp_path / "s" / ".shard-00001.npy.abc.tmp").write_bytes(b"half")  # what a SIGKILL mid-write leaves
    calls: list[int] = []
    out = store.build(ids, texts, fake_encoder(calls))
    assert calls == [4, 2] and store.encoded_shards == 2  # shards 1 and 2 only
    np.testing.assert_array_equal(out[:, 0], np.arange(10))
    assert store.complete and not any(p.name.endswith(".tmp") for p in (tmp_path / "s").iterdir())
    calls.clear()
    again = store.build(ids, texts, fake_encoder(calls))
    assert calls == [] and store.encoded_shards == 0
    np.testing.assert_array_equal(again, out)


def test_store_refuses_different_ids(tmp_path):
    store = EmbeddingStore(tmp_path / "s", shard_size=4)
    store.build(["a", "b"], ["x", "y"], fake_encoder([]))
    with pytest.raises(RuntimeError, match="cached ids differ"):
        store.build(["a", "c"], ["x", "y"], fake_encoder([]))
