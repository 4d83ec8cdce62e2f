"""The one pipeline: every (job, retriever) pair through the same loop, whatever the retriever kind or the task.

    results = run(spec)        # list[Result], the same on every torchrun rank

Per pair: the result key (a hash of the job's data identity, the retriever's identity and every
run-spec setting that applies to its kind) -> a cached result with that key, or
``job.evaluate`` -> a typed :class:`~benchmarks.results.Result`, saved atomically under a file
name that carries the key. Nothing is rendered here: tables are the CLI's step.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

from benchmarks import models, mteb_bridge, tasks
from benchmarks.beir_job import BeirJob
from benchmarks.job import Contexts, Job
from benchmarks.results import Result, load_result, result_stem, save_result
from benchmarks.spec import RunSpec
from encoders.retrievers.protocol import Retriever
from retrieval import distributed
from retrieval.distributed import Dist
from retrieval.codeid import fingerprint_of
from retrieval.io import cache_key
from retrieval.locks import file_lock
from retrieval.provenance import git_commit, library_versions, machine
from retrieval.runfile import write_trec

log = logging.getLogger(__name__)


def summary(r: Result, how: str) -> None:
    """The one console line per result."""
    log.info("%s (%s) on %s/%s: nDCG@10 %.4f, %.1f s, %s", r.model, r.encoder, r.dataset, r.split, r.metrics.get("ndcg@10", float("nan")), r.timings.get("total_s", 0.0), how)


def result_key(job: Job, retriever: Retriever, spec: RunSpec) -> str:
    """The hash of everything that can change this pair's scores, the code that computes them included.

    ``code``: :func:`retrieval.codeid.fingerprint` of the modules defining the job, the retriever and
    its components (each with every project module it imports), so a result computed by other code
    is never taken from the cache as current.
    """
    return cache_key(job=job.identity(), kind=retriever.kind, retriever=retriever.identity(), settings=spec.settings(retriever.kind), code=code_of(job, retriever))


def variant_key(job: Job, retriever: Retriever, spec: RunSpec) -> str:
    """:func:`result_key` without the code and the library versions (every ``"versions"`` entry of the identities):
    two results with one variant key ran the same experiment on the same data, and differ only in the code or libraries
    that computed them (the newer supersedes the older in tables, :mod:`benchmarks.cells`)."""
    return cache_key(job=without_versions(job.identity()), kind=retriever.kind, retriever=without_versions(retriever.identity()), settings=spec.settings(retriever.kind))


def without_versions(obj):
    """``obj`` (nested dicts and lists) without any ``"versions"`` entry."""
    if isinstance(obj, dict):
        return {k: without_versions(v) for k, v in obj.items() if k != "versions"}
    if isinstance(obj, (list, tuple)):
        return [without_versions(v) for v in obj]
    return obj


def code_of(job: Job, retriever: Retriever) -> str:
    """The code fingerprint of a (job, retriever) pair: the job's module, the retriever's and its components' (recursively)."""
    objs, todo = [job], [retriever]
    while todo:
        r = todo.pop()
        objs.append(r)
        todo += list(getattr(r, "components", ()))
    return fingerprint_of(*objs)


def jobs_for(spec: RunSpec) -> list[Job]:
    """The datasets (or MTEB tasks) of one task's spec, resolved to jobs."""
    if spec.data.task == "mteb":
        return mteb_bridge.jobs(spec)
    d = spec.data
    return [BeirJob(name, tasks.resolve_dataset(name, spec), split=d.split, task=d.task, top_k=spec.index.top_k, ignore_identical_ids=d.ignore_identical_ids, stream=spec.index.stream)
            for name in tasks.datasets_of(spec)]


def run(spec: RunSpec, built: dict[str, Retriever] | None = None) -> list[Result]:
    """Evaluate every (dataset, model) pair of ``spec``; returns the results (fresh or cached) on every rank.

    ``built``: retrievers already made for some ``--models`` entries (a model held in memory, from the Python API).
    """
    if not spec.model.models:
        raise ValueError("--models is empty")
    d = distributed.init()
    try:
        distributed.check_shared_folder(d, tasks.cache_root(spec))  # several nodes: ranks exchange shards through it
        return [r for s in tasks.expand(spec) for r in run_jobs(jobs_for(s), s, d, built)]
    finally:
        distributed.shutdown(d)


def run_jobs(jobs: list[Job], spec: RunSpec, d: Dist = Dist(), built: dict[str, Retriever] | None = None) -> list[Result]:
    out_dir = Path(spec.output.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    contexts = Contexts(spec, tasks.cache_root(spec), d)
    common = {"git_commit": git_commit(), "libraries": library_versions(), "machine": machine(), "world_size": d.world}
    built = dict(built or {})  # shared with fusion entries: a model named twice (minilm, bm25+minilm) loads once
    retrievers = {name: models.build(name, spec, built) for name in spec.model.models}  # every entry first: a bad one fails before anything runs
    results = []
    for job in jobs:
        for name in spec.model.models:
            results.append(run_pair(job, retrievers[name], spec, contexts, common))
    return results


def run_pair(job: Job, retriever: Retriever, spec: RunSpec, contexts: Contexts, common: dict) -> Result:
    """One (job, retriever): the cached result with this key, or a fresh one (computed, saved, shared with every rank)."""
    d, out_dir = contexts.dist, Path(spec.output.output)
    key = result_key(job, retriever, spec)
    path = out_dir / f"{result_stem(retriever.name, retriever.kind, job.dataset, job.split, key)}.json"
    # One writer per result: a second run on the same key waits here, then finds the first one's result.
    with file_lock(path) if d.is_main else nullcontext():
        cached = d.share(cached_result(path, key) if d.is_main and not spec.output.no_cache else None)  # every rank takes rank 0's decision
        if cached is not None:
            summary(cached, "cached")
            return cached
        return d.share(compute(job, retriever, spec, contexts, common, key))


def cached_result(path: Path, key: str) -> Result | None:
    if path.is_file():
        cached = load_result(path)
        if cached.config_key == key:
            return cached
    return None


def compute(job: Job, retriever: Retriever, spec: RunSpec, contexts: Contexts, common: dict, key: str) -> Result | None:
    """Evaluate one pair and save its result (rank 0; the other ranks take part in the job and get None)."""
    d, out_dir = contexts.dist, Path(spec.output.output)
    t = time.perf_counter()
    scored = job.evaluate(retriever, contexts, d)
    result = None
    if d.is_main:
        prov = retriever.provenance()
        components = getattr(retriever, "components", ())  # a retriever built from others (protocol.py): name each with its own result key
        if components:
            prov["components"] = [{"name": c.name, "kind": c.kind, "result_key": result_key(job, c, spec)} for c in components]
        timings = {**prov.pop("timings", {}), **scored.timings, "total_s": time.perf_counter() - t}
        identity = {"settings": spec.settings(retriever.kind), "code": code_of(job, retriever), "variant_key": variant_key(job, retriever, spec)}
        result = Result(model=retriever.name, encoder=retriever.kind, dataset=job.dataset, split=job.split, task=job.task, metrics=scored.metrics, num_queries=scored.num_queries,
                        num_docs=scored.num_docs, config_key=key, provenance={**common, **prov, **scored.provenance, **identity}, timings=timings,
                        per_query=scored.per_query)
        if spec.output.save_run and scored.run is not None:
            write_trec(scored.run, out_dir / "runs" / f"{result.stem}.trec", tag=result.stem)
        save_result(result, out_dir)
        summary(result, "computed")
    return result
