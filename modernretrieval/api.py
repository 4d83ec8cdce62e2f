"""The Python API: evaluate a model by name or held in memory, through the CLI's own pipeline, caches, keys and results.

    from modernretrieval import api
    results = api.evaluate("minilm", ["scifact"], data_dir="../shared/data")           # an alias, a folder, a hub id, a fusion "bm25+minilm"
    results = api.evaluate(model, ["scifact"], data_dir="../shared/data")              # a SentenceTransformer or a PyLate ColBERT in memory
    r = results[0]; r.metrics["ndcg@10"], r.per_query["ndcg@10"], r.provenance          # typed results (benchmarks.results.Result)
    print(api.leaderboard(results + others, "tables/", baseline="BM25"))               # every format, with significance

Settings are the run spec's fields by their flat names, as ``make_spec`` takes them (``top_k=100``,
``batch_size=32``, ``index="hnsw"``, ``cache_dir=...``); the result key, the caches and the result files are
the ones ``modernretrieval evaluate`` makes for the same settings.

A model held in memory is keyed by the hash of its weights and configuration
(:func:`encoders.loading.memory_hash`), never by an object id: a second call with the same weights is served
from the cache, and editing one weight in place makes it encode again. It is used as it is (its precision,
device, max length) and left as it was: its training mode is restored after encoding; a setting that would
change it (``pooling``, ``max_length``, another ``dtype``) is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmarks.leaderboard import render_folder
from benchmarks.models import IN_MEMORY
from benchmarks.pipeline import run
from benchmarks.results import Result, load_results, save_result
from benchmarks.spec import CompareConfig, Layout, make_spec

__all__ = ["Result", "evaluate", "leaderboard"]


def is_pylate_model(model) -> bool:
    """A PyLate ColBERT (a multi-vector model), told by its class's module; pylate need not be imported to ask."""
    return any(c.__module__.split(".")[0] == "pylate" for c in type(model).__mro__)


def evaluate(model, datasets: str | Sequence[str] = ("scifact",), *, encoder: str | None = None, name: str | None = None,
             output: str | os.PathLike = "results", **settings) -> list[Result]:
    """Evaluate ``model`` on ``datasets`` (names or BEIR folders) and return one typed result per dataset.

    ``model``: a ``--models`` entry (``"bm25"``, ``"minilm"``, a folder, a hub id, ``"bm25+minilm"``), or a
    ``SentenceTransformer`` / PyLate ``ColBERT`` held in memory (``encoder`` defaults to what it is: colbert for
    a PyLate model, dpr otherwise; ``name`` is its row label). ``settings``: run-spec fields (module docstring).
    """
    datasets = (str(datasets),) if isinstance(datasets, (str, os.PathLike)) else tuple(str(d) for d in datasets)
    common = {"datasets": datasets, "output": str(output), **settings}
    if isinstance(model, (str, os.PathLike)):
        return run(make_spec(models=(str(model),), **({"encoder": encoder} if encoder else {}), **common))
    kind = encoder or ("colbert" if is_pylate_model(model) else "dpr")
    if kind not in IN_MEMORY:
        raise ValueError(f"a model held in memory runs as {', '.join(IN_MEMORY)}, not {kind!r}")
    spec = make_spec(models=("memory",), encoder=kind, **common)
    training = getattr(model, "training", False)
    try:
        retriever = IN_MEMORY[kind](model, name, spec)
        key = retriever.src.revision
        return run(spec.replace(models=(key,)), built={key: retriever})
    finally:
        if training:
            model.train(True)  # encoding put it in eval mode: give the caller (a Trainer) back what it had


def leaderboard(results: Iterable[Result], folder: str | os.PathLike, *, layout: Layout = "default", baseline: str | None = None, **compare) -> str:
    """Write every table (Markdown, CSV, LaTeX, the interactive page; the paper layout's too with ``layout="paper"``) of the
    results in ``folder`` with ``results`` added there, and return the Markdown of ``results``.

    ``baseline`` and ``compare`` (``test``, ``correction``, ``alpha``, ``bootstrap``, ``stats_seed``, ``ci``,
    ``permutations``) are :class:`benchmarks.spec.CompareConfig`'s: significance marks, CIs and rank intervals.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = list(results)
    have = {(r.stem, r.created_at) for r in load_results(folder)}
    for r in results:
        if (r.stem, r.created_at) not in have:
            save_result(r, folder)
    return render_folder(folder, results, CompareConfig(baseline=baseline, **compare), layout)
