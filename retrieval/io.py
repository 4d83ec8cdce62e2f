"""Atomic files and content keys: the two things every cache and result file here rests on.

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed
over its final name, so a killed process leaves either the old file or the new one, never
half of one. The temporary name says who writes it, ``.<name>.<pid>.<random>.tmp``, so a
cleaner can tell a killed writer's leftover from a live writer's file in flight
(:func:`temp_writer_pid`). :func:`cache_key` hashes the fields that determine an artefact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<rand>[^.]+)\.tmp")  # mkstemp's random part has no dots


def temp_writer_pid(name: str) -> int | None:
    """The writer's pid in a temp file name ``.<name>.<pid>.<random>.tmp``; None for any other name.

    >>> temp_writer_pid(".shard-00001.npy.4242.k3j2h1g0.tmp"), temp_writer_pid(".shard-00001.npy.k3j2h1g0.tmp")
    (4242, None)
    """
    m = _TEMP.fullmatch(name)
    return int(m["pid"]) if m else None


def atomic_write(path: Path, write: Callable[[object], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` on a temp sibling named after this process, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def cache_key(**fields) -> str:
    """A short stable hash of the fields that determine a cached artefact."""
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]
