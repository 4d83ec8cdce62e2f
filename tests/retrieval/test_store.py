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
    (tmp_path / "s" / f".shard-00001.npy.{dead_pid()}.abc.tmp").write_bytes(b"half")  # what a SIGKILL mid-write leaves
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


# ---- issue 17 #8: concurrent writers --------------------------------------------------------

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from retrieval.locks import LockTimeout, file_lock  # noqa: E402
from retrieval.store import prepare_store, remove_store  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_atomic_write_temp_names_its_writer(tmp_path):
    seen = []
    atomic_write_json(tmp_path / "r.json", {"a": 1})  # warm: the folder exists
    atomic_write(tmp_path / "r.json", lambda f: seen.extend(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) or f.write(b"{}"))
    (name,) = seen
    assert re.fullmatch(rf"\.r\.json\.{os.getpid()}\.[a-z0-9_]+\.tmp", name), name


def test_stale_temps_removed_only_when_their_writer_is_gone(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = folder / f".shard-00000.npy.{dead_pid()}.k3j2h1g0.tmp"
        alive = folder / f".shard-00001.npy.{live.pid}.a1b2c3d4.tmp"
        ancient = folder / f".shard-00002.npy.{live.pid}.zz99yy88.tmp"  # live pid, but days old: a reused pid
        for p in (dead, alive, ancient):
            p.write_bytes(b"half")
        os.utime(ancient, (time.time() - 3 * 86400,) * 2)
        prepare_store(folder, ["a", "b"])
        assert not dead.exists() and alive.exists() and not ancient.exists()
    finally:
        live.kill()
        live.wait()


BUILDER = """
import json, pathlib, sys, time
import numpy as np
from retrieval.store import EmbeddingStore

folder, marker, role = sys.argv[1:4]
save = np.save

def slow_save(f, arr, **kw):  # A holds each shard's temp file open for a while, as a big shard would
    save(f, arr, **kw)
    if role == "A":
        pathlib.Path(marker).touch()
        time.sleep(0.6)

np.save = slow_save
if role == "B":
    while not pathlib.Path(marker).exists():
        time.sleep(0.01)
ids = [f"d{i}" for i in range(4)]
store = EmbeddingStore(folder, shard_size=2)
out = store.build(ids, ["a" * i for i in range(4)], lambda texts: np.array([[len(t), 1.0] for t in texts], dtype=np.float32))
print(json.dumps({"encoded": store.encoded_shards, "rows": out[:, 0].tolist()}))
"""


def test_two_processes_building_one_store(tmp_path):
    folder, marker = tmp_path / "store", tmp_path / "a-is-writing"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {r: subprocess.Popen([sys.executable, "-c", BUILDER, str(folder), str(marker), r], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in "AB"}
    outs = {r: p.communicate(timeout=60) for r, p in procs.items()}
    for r, p in procs.items():
        assert p.returncode == 0, f"{r} failed:\n{outs[r][1][-2000:]}"
    res = {r: json.loads(outs[r][0].strip().splitlines()[-1]) for r in "AB"}
    assert res["A"] == {"encoded": 2, "rows": [0.0, 1.0, 2.0, 3.0]}
    assert res["B"] == {"encoded": 0, "rows": [0.0, 1.0, 2.0, 3.0]}  # waited for A, then found the store complete
    store = EmbeddingStore(folder, shard_size=2)
    assert store.complete and store.load(4)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_second_builder_fails_clearly_after_its_timeout(tmp_path):
    folder = tmp_path / "s"
    with file_lock(folder):
        with pytest.raises(LockTimeout, match=r"\.s\.lock: still held by pid"):
            EmbeddingStore(folder, shard_size=4, lock_timeout=0.1).build(["a"], ["x"], fake_encoder([]))
    assert not (folder / "meta.json").exists()


def test_remove_store_waits_for_the_writer(tmp_path):
    folder = tmp_path / "s"
    EmbeddingStore(folder, shard_size=4).build(["a"], ["x"], fake_encoder([]))
    with file_lock(folder):
        with pytest.raises(LockTimeout):
            remove_store(folder, timeout=0.1)
        assert (folder / "meta.json").is_file()  # a build in flight keeps its store
    remove_store(folder, timeout=1)
    assert not folder.exists()
