"""torch.distributed for evaluation under torchrun: rank, world size, a barrier and a broadcast that never time out on a busy rank.

Under ``torchrun --nproc-per-node N evaluate.py …`` every rank encodes its share of the corpus
shards; rank 0 alone then builds the index, searches, scores and writes results, which can take
far longer than a collective's timeout (NCCL's watchdog kills a job after 10 minutes by default).
So the waits here are not collectives: :meth:`Dist.barrier` and :meth:`Dist.share` go through the
process group's key-value store, polled every ``POLL_S`` seconds, and a rank waits as long as it
takes. ``$RETRIEVAL_DIST_TIMEOUT_S`` (default 7200) sets the process group's own timeout, for the
collectives of libraries (DDP training).

Ranks exchange encoded shards through the cache folder, so on several nodes that folder must be
one shared filesystem: :func:`check_shared_folder` verifies it at the start of a run, and every
rank fails together, with one message, when some rank cannot see rank 0's files.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from retrieval.io import atomic_write_text

TIMEOUT_ENV = "RETRIEVAL_DIST_TIMEOUT_S"
POLL_S = 0.2
_CALLS = itertools.count()


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _key(self, what: str) -> str:
        return f"modernretrieval/{what}/{next(_CALLS)}"  # every rank makes the same calls in the same order

    def _wait(self, store, keys: list[str]) -> None:
        while not store.check(keys):
            time.sleep(POLL_S)

    def barrier(self) -> None:
        """Every rank reaches this point before any leaves it; a rank may wait here as long as the others take."""
        if self.world <= 1:
            return
        store, key = dist.distributed_c10d._get_default_store(), self._key("barrier")
        store.set(f"{key}/{self.rank}", b"1")
        self._wait(store, [f"{key}/{r}" for r in range(self.world)])

    def share(self, obj):
        """Rank 0's ``obj`` on every rank (pickled through the store); ``obj`` itself in a single process."""
        if self.world <= 1:
            return obj
        store, key = dist.distributed_c10d._get_default_store(), self._key("share")
        if self.is_main:
            store.set(key, pickle.dumps(obj))
            return obj
        self._wait(store, [key])
        return pickle.loads(store.get(key))


class SharedFolderError(RuntimeError):
    """Some rank cannot read what rank 0 writes into the cache folder: the ranks do not share it."""


SHARED_NEED = ("Ranks exchange encoded shards through the cache folder: on several nodes, --cache-dir must be one folder "
               "on a filesystem every node mounts (NFS, Lustre, ...).")


def check_shared_folder(d: Dist, folder: Path) -> None:
    """Raise :class:`SharedFolderError` on every rank unless every rank reads rank 0's fresh marker file in ``folder``.

    Rank 0 writes a random nonce to ``folder/.shared-folder-check-<nonce>`` (atomically) and shares the
    file name; each rank reads that name in ``folder`` as it sees it and posts ``""`` or its error to the
    store; every rank waits for all posts, so all ranks pass or all raise (none hangs). Rank 0 removes
    the marker once all have read it. A single process does nothing.
    """
    if d.world <= 1:
        return
    folder = Path(folder).expanduser().absolute()
    nonce = secrets.token_hex(16)
    name, error = f".shared-folder-check-{nonce}", ""
    if d.is_main:
        try:
            atomic_write_text(folder / name, nonce)
        except OSError as e:
            error = f"could not write {folder / name} ({type(e).__name__}: {e.strerror or e})"
    name, nonce = d.share((name, nonce))
    if not error:
        try:
            seen = (folder / name).read_text()
            error = "" if seen == nonce else f"read {seen!r} from {folder / name}, not rank 0's nonce {nonce!r}"
        except OSError as e:
            error = f"could not read rank 0's marker file {folder / name} ({type(e).__name__}: {e.strerror or e})"
    store, key = dist.distributed_c10d._get_default_store(), d._key("shared-folder")
    store.set(f"{key}/{d.rank}", json.dumps({"host": socket.gethostname(), "folder": str(folder), "error": error}))
    keys = [f"{key}/{r}" for r in range(d.world)]
    d._wait(store, keys)
    reports = [json.loads(store.get(k)) for k in keys]  # every rank posted after its read: the marker can go
    if d.is_main:
        (folder / name).unlink(missing_ok=True)
    who = [f"rank {r} (host {x['host']})" for r, x in enumerate(reports)]
    failed = [r for r, x in enumerate(reports) if x["error"]]
    if failed:
        raise SharedFolderError(
            f"the cache folder is not shared by all {d.world} ranks: "
            + "; ".join(f"{who[r]} {reports[r]['error']}" for r in failed)
            + ". The cache folder as each rank sees it: " + ", ".join(f"{who[r]} {x['folder']}" for r, x in enumerate(reports))
            + f". {SHARED_NEED}")


def timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "7200")))


def init() -> Dist:
    """Join the process group torchrun describes in the environment; a single process gets ``Dist()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout())
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        d.barrier()
        dist.destroy_process_group()
