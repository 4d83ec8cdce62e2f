"""One writer at a time: an advisory lock per thing written (a store, a result file, a converted dataset).

``with file_lock(target, timeout=...):`` holds an exclusive ``fcntl.flock`` on the sibling lock file
``.<target name>.lock`` (:func:`lock_path`). A second process asking for the same target waits
until the first lets go (the kernel drops the lock when its holder exits, even on SIGKILL), or,
past ``timeout`` seconds, raises :class:`LockTimeout` naming the lock file and the holder's pid.

The lock file sits beside the target, not inside it, so deleting or replacing the target
(``--no-cache``, an atomic rename of a folder) cannot pull the lock from under its holder; it is
never deleted for the same reason (a waiter holds it open). Locks are advisory: only writers that
take them are kept apart. flock works between processes on one machine and on most network file
systems (NFSv4); the ranks of one torchrun job share a lock by letting rank 0 take it.

    >>> import tempfile, pathlib
    >>> result = pathlib.Path(tempfile.mkdtemp()) / "scifact.json"
    >>> with file_lock(result, timeout=5) as lock:
    ...     lock.name
    '.scifact.json.lock'
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _acquire(fd: int, path: Path, timeout: float | None, poll: float) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(f"{path}: still held by pid {_holder(path)} after {timeout:g} s (another run is writing the same thing; wait for it or raise the timeout)")
        if not waiting:
            log.info("waiting for %s (held by pid %s)", path, _holder(path))
            waiting = True
        time.sleep(poll)


@contextmanager
def file_lock(target: Path, *, timeout: float | None = None, poll: float = 0.05) -> Iterator[Path]:
    """Hold the exclusive lock of ``target`` (a file or folder, which need not exist) for the ``with`` block.

    ``timeout=None`` waits as long as it takes; ``timeout=0`` tries once. Yields the lock file's path.
    Not re-entrant: taking the same target's lock again inside the block, in the same process, waits forever.
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout, poll)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # who holds it, for a waiter's message
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
