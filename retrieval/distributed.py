"""torch.distributed for evaluation under torchrun: rank, world size, a barrier and a broadcast that never time out on a busy rank.

Under ``torchrun --nproc-per-node N evaluate.py …`` every rank encodes its share of the corpus
shards; rank 0 alone then builds the index, searches, scores and writes results, which can take
far longer than a collective's timeout (NCCL's watchdog kills a job after 10 minutes by default).
So the waits here are not collectives: :meth:`Dist.barrier` and :meth:`Dist.share` go through the
process group's key-value store, polled every ``POLL_S`` seconds, and a rank waits as long as it
takes. ``$RETRIEVAL_DIST_TIMEOUT_S`` (default 7200) sets the process group's own timeout, for the
collectives of libraries (DDP training).
"""

from __future__ import annotations

import itertools
import os
import pickle
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

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
