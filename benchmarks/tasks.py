"""Tasks as data: which datasets each task evaluates by default, and how a dataset name becomes a BEIR folder.

A dataset name is, in this order: a generated long-document suite (``passkey-1024``,
:mod:`benchmarks.longdoc`), a folder in another published layout (MLDR, LongEmbed, MTEB/CoIR;
converted once into the cache by :mod:`retrieval.layouts`), or a BEIR name or folder
(:func:`retrieval.sources.resolve`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from benchmarks import longdoc
from benchmarks.spec import RunSpec
from retrieval import sources
from retrieval.layouts import as_beir, detect

# task -> its default datasets (``--datasets`` overrides); mteb names MTEB tasks instead (benchmarks.mteb_bridge)
TASK_DATASETS: dict[str, tuple[str, ...]] = {
    "beir": ("scifact",),
    "code": ("cosqa",),
    "longdoc": tuple(longdoc.default_datasets()),
    "mteb": (),
}
ALL_TASKS = ("beir", "code", "longdoc")  # what --task all runs


def cache_root(spec: RunSpec) -> Path:
    return Path(spec.output.cache_dir) if spec.output.cache_dir else sources.cache_dir()


def expand(spec: RunSpec) -> list[RunSpec]:
    """``--task all`` -> one spec per task; any other task -> ``[spec]``."""
    if spec.data.task == "all":
        return [spec.replace(task=t) for t in ALL_TASKS]
    return [spec]


def datasets_of(spec: RunSpec) -> tuple[str, ...]:
    """The dataset names a (non-mteb) task evaluates."""
    if spec.data.task not in TASK_DATASETS:
        hint = difflib.get_close_matches(spec.data.task, TASK_DATASETS, n=1)
        raise ValueError(f"unknown task {spec.data.task!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(TASK_DATASETS)})")
    return spec.data.datasets or TASK_DATASETS[spec.data.task]


def resolve_dataset(name: str, spec: RunSpec) -> Path:
    """A generated long-document suite name, a folder in another layout, or a BEIR name or folder -> a BEIR folder."""
    data = spec.data
    if longdoc.parse_name(name) is not None:
        return longdoc.materialize(name, cache_root(spec), data.data_dir)
    env_dir = os.environ.get(sources.DATA_DIR_ENV)
    for cand in (Path(name).expanduser(), data.data_dir and Path(data.data_dir) / name, env_dir and Path(env_dir) / name):
        if cand and cand.is_dir() and detect(cand, data.split) not in (None, "beir"):
            return as_beir(cand, cache_root(spec), data.split)
    return sources.resolve(name, data.data_dir)
