"""A resumable, sharded on-disk embedding store.

Every file goes through :mod:`retrieval.io`'s atomic writers, so a killed process leaves either
the old file or the new one, never half of one. An :class:`EmbeddingStore` writes one ``.npy`` shard per block of items; a
restarted job loads the finished shards and encodes only the missing ones. ``meta.json``
is written last and marks the store complete.

Concurrent runs on one store are safe: :func:`building` holds the store's lock
(:func:`retrieval.locks.file_lock`) for the whole build, so a second writer waits (or fails with
``LockTimeout`` after ``lock_timeout`` seconds) and then finds the shards the first one wrote; and
a temp file is removed only when the process named in it is gone (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from retrieval import progress
from retrieval.io import atomic_save_npy, atomic_write_json, temp_writer_pid
from retrieval.locks import file_lock

STALE_AFTER_S = 24 * 3600  # a temp file this old is a leftover whoever's pid it names (pids get reused)


def writer_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path, *, max_age_s: float = STALE_AFTER_S) -> int:
    """Delete the ``.*.tmp`` leftovers of killed writers in ``folder``; returns how many.

    A temp file ``.<name>.<pid>.<random>.tmp`` is a leftover when process ``pid`` is gone, and any
    temp file is one when older than ``max_age_s`` (a reused pid, or a name that names no writer).
    A live writer's file in flight is kept. Pids are this machine's; a writer on another host of a
    shared file system is kept apart by the store lock (:func:`building`), which callers hold.
    """
    n, now = 0, time.time()
    for p in Path(folder).glob(".*.tmp"):
        pid = temp_writer_pid(p.name)
        try:
            age = now - p.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer just renamed it into place
        if (pid is not None and not writer_alive(pid)) or age > max_age_s:
            p.unlink(missing_ok=True)
            n += 1
    return n


@contextmanager
def building(folder: Path, *, rank: int = 0, timeout: float | None = None) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the block; under torchrun only rank 0 takes it (its ranks write together)."""
    if rank != 0:
        yield
        return
    with file_lock(folder, timeout=timeout):
        yield


def remove_store(folder: Path, *, timeout: float | None = None) -> None:
    """Delete a store folder (``--no-cache``) under its writer lock, so no build is filling it meanwhile."""
    with file_lock(folder, timeout=timeout):
        shutil.rmtree(folder, ignore_errors=True)


def prepare_store(folder: Path, ids: Sequence[str], *, rank: int = 0, barrier: Callable[[], None] | None = None) -> None:
    """Open a sharded store folder for (re)building: create it, drop temp files a killed writer left,
    and pin its id order in ``ids.json`` (refusing a cache built for other ids).

    Under torchrun (``barrier`` given) only rank 0 touches the folder, before any rank writes: a
    rank cleaning "stale" temp files would otherwise delete another rank's file in flight.
    """
    ids_path = folder / "ids.json"
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        if not ids_path.is_file():
            atomic_write_json(ids_path, list(ids))
    if barrier is not None:
        barrier()
    if json.loads(ids_path.read_text()) != list(ids):
        raise RuntimeError(f"{ids_path}: cached ids differ from this corpus; delete {folder} or use --no-cache")


def encode_missing(folder: Path, ids: Sequence[str], texts: Sequence[str], shard_size: int, missing: list[int], encode: Callable[[list[str]], Sequence],
                   write: Callable[[int, Sequence], None], *, desc: str, unit: str, rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None) -> bool:
    """The shard loop both stores share: encode this rank's ``missing`` shards and ``write(i, rows)`` each.

    Rank ``r`` takes the shards ``i`` with ``i % world == r``; with ``world > 1`` everyone meets at
    ``barrier()`` afterwards. Returns whether this process is rank 0 (the one that finishes the store).
    """
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    todo = [i for i in missing if i % world == rank]
    done = 0
    with progress.bar(total=sum(min(shard_size, len(ids) - i * shard_size) for i in todo), desc=desc, unit=unit, disable=not todo, step=True) as bar:
        for i in todo:
            lo, hi = i * shard_size, min((i + 1) * shard_size, len(ids))
            rows = encode(list(texts[lo:hi]))
            if len(rows) != hi - lo:
                raise RuntimeError(f"encoder returned {len(rows)} rows for {hi - lo} texts")
            write(i, rows)
            done += hi - lo
            progress.catch_up(bar, done)  # the encoder's batches may have moved it already
    if world > 1:
        barrier()
    return rank == 0


class EmbeddingStore:
    """Embeddings of an ordered list of ids, in shards of ``shard_size`` rows.

    Layout: ``ids.json`` (the order), ``shard-00000.npy`` … (rows ``[i*S, (i+1)*S)``,
    shape ``(<=S, dim)``), ``meta.json`` (written last: ``{"n", "dim", "dtype", "complete"}``).
    """

    def __init__(self, folder: Path, *, shard_size: int = 4096, dtype: str = "float32", lock_timeout: float | None = None):
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.dtype = np.dtype(dtype)
        self.lock_timeout = lock_timeout  # seconds a second writer waits for the first (None: as long as it takes)

    def shard_path(self, i: int) -> Path:
        return self.folder / f"shard-{i:05d}.npy"

    @property
    def complete(self) -> bool:
        meta = self.folder / "meta.json"
        return meta.is_file() and json.loads(meta.read_text()).get("complete", False)

    def missing_shards(self, n: int) -> list[int]:
        return [i for i in range((n + self.shard_size - 1) // self.shard_size) if not self.shard_path(i).is_file()]

    def build(self, ids: Sequence[str], texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], *, desc: str = "encode", rank: int = 0, world: int = 1, barrier: Callable[[], None] | None = None, load: bool = True) -> np.ndarray | None:
        """Encode what is missing, shard by shard, and return all rows ``(len(ids), dim)`` in ``ids`` order.

        ``texts`` only needs slicing (``texts[lo:hi]``), so it can read lazily from disk. With
        ``world > 1`` (torchrun), rank ``r`` encodes the missing shards ``i`` with ``i % world == r``,
        everyone meets at ``barrier()``, and only rank 0 loads and returns the rows (others get None).
        ``load=False`` returns None instead of the rows (read them with :meth:`iter_shards`), so peak
        memory stays at one shard.
        """
        with building(self.folder, rank=rank, timeout=self.lock_timeout):
            prepare_store(self.folder, ids, rank=rank, barrier=barrier if world > 1 else None)
            missing = self.missing_shards(len(ids))
            self.encoded_shards = len(missing)  # shards this call had to encode, all ranks together (0 on a full cache hit)

            def write(i: int, rows) -> None:
                atomic_save_npy(self.shard_path(i), np.asarray(rows).astype(self.dtype, copy=False))

            if not encode_missing(self.folder, ids, texts, self.shard_size, missing, encode, write, desc=desc, unit="text", rank=rank, world=world, barrier=barrier):
                return None
            dim = int(np.load(self.shard_path(0), mmap_mode="r").shape[1]) if len(ids) else 0
            atomic_write_json(self.folder / "meta.json", {"n": len(ids), "dim": dim, "dtype": str(self.dtype), "complete": True})
            return self.load(len(ids)) if load else None

    def iter_shards(self, n: int):
        """The stored rows, one shard ``(<=shard_size, dim)`` at a time, in id order."""
        for i in range((n + self.shard_size - 1) // self.shard_size):
            yield np.load(self.shard_path(i))

    def load(self, n: int) -> np.ndarray:
        shards = [np.load(self.shard_path(i)) for i in range((n + self.shard_size - 1) // self.shard_size)]
        return np.concatenate(shards, axis=0) if shards else np.zeros((0, 0), dtype=self.dtype)
