"""Run our retrievers through MTEB: any retriever as MTEB's ``SearchProtocol``, local BEIR folders as MTEB task data.

    python evaluate.py --task mteb --mteb-tasks SciFact,NFCorpus --models bm25,minilm

* :class:`MtebSearch` puts any of our retrievers (BM25, DPR, ColBERT, a new kind) under MTEB's
  ``SearchProtocol``: MTEB hands it the corpus (``index``) and the queries (``search``) and scores
  the run with its own evaluator. The retriever caches in the pipeline's keyed folders as usual.
* :func:`local_task` hands a BEIR folder to the MTEB task of the same data by replacing that task's
  ``load_data``. MTEB's pinned Hugging Face revision is then *not* what was scored, so the MTEB
  JSON's ``dataset_revision`` becomes ``local-beir-sha256:<our dataset checksum>``.
* :class:`MtebJob` is a pipeline job (:mod:`benchmarks.job`): the pipeline's one loop keys, caches
  and saves its results like any other. It also writes MTEB's own JSON
  (``<output>/mteb/<model>/<revision>/<Task>.json`` + ``model_meta.json``, MTEB's cache layout).

mteb is the ``mteb`` extra; it is imported only when an MTEB task runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import registry
from benchmarks.job import Contexts, Scored, search_run
from benchmarks.spec import RunSpec
from encoders.retrievers.protocol import Retriever
from retrieval import sources
from retrieval.beir import BeirDataset, content_order, dataset_checksum, doc_text, load_beir
from retrieval.distributed import Dist
from retrieval.extras import require
from retrieval.io import atomic_write_json
from retrieval.metrics import MetricSpec

log = logging.getLogger(__name__)

LOCAL_REVISION_PREFIX = "local-beir-sha256:"


def _mteb():
    return require("mteb", extra="mteb")


# --- our retrievers under MTEB's SearchProtocol ----------------------------------------------------


class MtebSearch:
    """Any :class:`~encoders.retrievers.protocol.Retriever` as MTEB's ``SearchProtocol`` (structural; no base class).

    ``index`` turns MTEB's corpus (a ``datasets.Dataset`` of ``id``, ``title``, ``text``) into a BEIR
    corpus and indexes it in a cache folder keyed by its content; ``search`` returns the BEIR run.
    """

    def __init__(self, retriever: Retriever, contexts: Contexts, meta):
        self.retriever, self.contexts, self._meta = retriever, contexts, meta
        self.n_docs = 0

    @property
    def mteb_model_meta(self):
        return self._meta

    def index(self, corpus, *, task_metadata, hf_split: str, hf_subset: str, encode_kwargs, num_proc=None, **kwargs: Any) -> None:
        titles = corpus["title"] if "title" in corpus.column_names else [""] * len(corpus)
        docs = {str(i): {"title": t or "", "text": x} for i, t, x in zip(corpus["id"], titles, corpus["text"])}
        docs = {d: docs[d] for d in content_order(docs)}  # indexed in content order, as BEIR jobs index (retrieval.beir.content_order)
        h = hashlib.sha256()
        for i, d in docs.items():
            h.update(f"{i}\t{doc_text(d)}\n".encode())
        self.n_docs, self.doc_ids = len(docs), set(docs)
        self.retriever.index(docs, self.contexts(self.retriever, h.hexdigest(), getattr(task_metadata, "name", "")))

    def search(self, queries, *, task_metadata, hf_split: str, hf_subset: str, top_k: int, encode_kwargs, top_ranked=None, num_proc=None, **kwargs: Any) -> dict[str, dict[str, float]]:
        """The run our BEIR jobs would make (:func:`benchmarks.job.search_run`: depth floor, ties at the cut, empty queries), scored by MTEB."""
        if top_ranked is not None:
            raise ValueError("MtebSearch does full-corpus search only; reranking tasks (top_ranked) are not supported")
        searched = search_run(self.retriever, {str(q): t for q, t in zip(queries["id"], queries["text"])}, top_k, self.doc_ids)
        self.searched, self.top_k = searched, top_k
        return searched.run


def model_meta(name: str, revision: str, *, kind: str):
    """MTEB's ``ModelMeta`` for one of our retrievers (name and revision name the result folder)."""
    return _mteb().models.ModelMeta.create_empty(
        overwrites=dict(name=name, revision=revision.replace(":", "-"), framework=["PyTorch"], modalities=["text"],
                        model_type=["late-interaction"] if kind == "colbert" else ["dense"] if kind == "dpr" else [])
    )


# --- tasks -----------------------------------------------------------------------------------------


def get_task(name: str, split: str):
    """MTEB's task ``name`` evaluated on ``split``; an unknown name raises ValueError with MTEB's "did you mean"."""
    try:
        task = _mteb().get_task(name)
    except KeyError as e:
        raise ValueError(f"unknown MTEB task {name!r}: {e.args[0] if e.args else e}") from None
    if split not in task.metadata.eval_splits:
        log.info("%s: evaluating split %r (MTEB's own splits: %s)", name, split, list(task.metadata.eval_splits))
    return task.filter_eval_splits([split])


def beir_split_data(ds: BeirDataset) -> dict:
    """Our loaded BEIR split -> MTEB's ``RetrievalSplitData`` (``datasets.Dataset`` corpus/queries, qrels dict)."""
    Dataset = require("datasets", extra="mteb").Dataset
    doc_ids, qids = list(ds.corpus), list(ds.queries)
    corpus = Dataset.from_dict({"id": doc_ids, "title": [ds.corpus[d]["title"] for d in doc_ids], "text": [ds.corpus[d]["text"] for d in doc_ids]})
    queries = Dataset.from_dict({"id": qids, "text": [ds.queries[q] for q in qids]})
    return {"corpus": corpus, "queries": queries, "relevant_docs": {q: dict(d) for q, d in ds.qrels.items()}, "top_ranked": None}


def local_task(name: str, folder: Path, split: str = "test"):
    """MTEB's retrieval task ``name`` reading the BEIR folder ``folder`` (validated by our loader) instead of its Hugging Face data.

    The task's ``load_data`` is replaced on this instance only; the loaded :class:`BeirDataset` is
    kept as ``task.local_beir`` once loaded.
    """
    task = get_task(name, split)
    if not isinstance(task, _mteb().abstasks.AbsTaskRetrieval):
        raise ValueError(f"{name} is a {task.metadata.type} task; only retrieval tasks can read a local BEIR folder")
    if task.metadata.is_multilingual:
        raise ValueError(f"{name} has several subsets ({', '.join(task.hf_subsets)}); a BEIR folder holds one")
    folder = Path(folder)

    def load_data(num_proc: int | None = None, *, timer=None, **kwargs: Any) -> None:
        if task.data_loaded:
            return
        ds = load_beir(folder, split, name=folder.name)
        task.local_beir = ds
        task.dataset = {"default": {split: beir_split_data(ds)}}
        task.dataset_transform(num_proc=num_proc)
        task.data_loaded = True

    task.load_data = load_data
    task.local_folder = folder
    return task


def _mteb_to_ours() -> dict[str, str]:
    return {s.mteb_name.lower(): name for name, s in registry.REGISTRY.items() if s.mteb_name}


def _local_folder(our_name: str | None, data_dir: str | None) -> Path | None:
    if our_name is None:
        return None
    try:
        return sources.resolve(our_name, data_dir, download=False)
    except FileNotFoundError:
        return None


def task_sources(spec: RunSpec) -> list[tuple[str, Path | None]]:
    """``(MTEB task, local BEIR folder or None)`` for ``--mteb-tasks`` (or the MTEB names of ``--datasets``, or SciFact)."""
    data = spec.data
    if data.mteb_tasks or not data.datasets:
        ours = _mteb_to_ours()
        return [(name, _local_folder(ours.get(name.lower()), data.data_dir)) for name in (data.mteb_tasks or ("SciFact",))]
    out = []
    for name in data.datasets:
        folder = sources.resolve(name, data.data_dir, download=False) if ("/" in name or Path(name).is_dir()) else _local_folder(name, data.data_dir)
        mteb_name = registry.spec_for(folder.name if folder else name).mteb_name
        if mteb_name is None:
            raise ValueError(f"dataset {name!r} has no MTEB task in benchmarks.registry.REGISTRY; pass --mteb-tasks")
        out.append((mteb_name, folder))
    return out


def jobs(spec: RunSpec) -> list["MtebJob"]:
    out = [MtebJob(name, folder, spec) for name, folder in task_sources(spec)]
    for job in out:  # fail on a wrong task name before loading any model
        get_task(job.mteb_name, job.split)
    return out


# --- results ---------------------------------------------------------------------------------------

_AT_K = re.compile(r"(ndcg|recall|map|mrr|precision)_at_(\d+)")


def our_metrics(scores: dict, main_score: str) -> dict[str, float]:
    """MTEB's score dict -> the metrics our BEIR results carry (``ndcg_at_10`` -> ``ndcg@10``), plus the main score."""
    spec = MetricSpec()
    wanted = {f"{name}@{k}" for name, ks in (("ndcg", spec.ndcg_at), ("recall", spec.recall_at), ("map", spec.map_at), ("mrr", spec.mrr_at)) for k in ks}
    out: dict[str, float] = {}
    for key, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            continue
        m = _AT_K.fullmatch(key)
        name = f"{m[1]}@{m[2]}" if m else key
        if name in wanted or key == main_score:
            out[name] = float(value)
    return out


def save_mteb_result(task_result, meta, output: Path) -> Path:
    """MTEB's ``TaskResult`` JSON and ``model_meta.json`` beside it (atomically), as MTEB's result cache lays them out."""
    path = Path(output) / "mteb" / meta.model_name_as_path() / meta.revision / f"{task_result.task_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # unique per writer
    os.close(fd)
    try:
        task_result.to_disk(Path(tmp))  # MTEB's own serialisation (rounded scores, timestamp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    atomic_write_json(path.parent / "model_meta.json", meta.to_dict())
    return path


@dataclass
class MtebJob:
    """One MTEB task (from its local BEIR folder, or MTEB's own data) as a pipeline job."""

    mteb_name: str
    folder: Path | None
    spec: RunSpec

    def __post_init__(self):
        self.dataset, self.split, self.task = f"{self.mteb_name} (MTEB)", self.spec.data.split, "mteb"

    def identity(self) -> dict:
        data = "local:" + dataset_checksum(self.folder, self.split) if self.folder else "mteb:" + self.mteb_name
        return {"mteb_task": self.mteb_name, "data": data, "split": self.split, "evaluator": "mteb", "versions": {"mteb": _mteb().__version__}}

    def evaluate(self, retriever: Retriever, contexts: Contexts, dist: Dist) -> Scored | None:
        if not dist.is_main:
            return None  # MTEB runs in one process
        task = local_task(self.mteb_name, self.folder, self.split) if self.folder else get_task(self.mteb_name, self.split)
        prov = self._load(task)
        model = MtebSearch(retriever, Contexts(contexts.spec, contexts.root, Dist()), model_meta(retriever.name, retriever.provenance().get("model_revision", retriever.kind), kind=retriever.kind))
        t = time.perf_counter()
        res = _mteb().evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False, show_progress_bar=False)
        seconds = time.perf_counter() - t
        if res.exceptions:
            raise RuntimeError(f"MTEB failed on {self.mteb_name}: {res.exceptions[0].exception}")
        (task_result,) = res.task_results
        if self.folder:
            task_result.dataset_revision = LOCAL_REVISION_PREFIX + task.local_beir.checksum
        path = save_mteb_result(task_result, model.mteb_model_meta, Path(self.spec.output.output))
        scores = task_result.scores[self.split]
        if len(scores) != 1:
            log.warning("%s has %d subsets; our result keeps the first (%s), the MTEB JSON has all", self.mteb_name, len(scores), scores[0]["hf_subset"])
        prov.update(mteb_version=task_result.mteb_version, mteb_dataset_revision_field=task_result.dataset_revision, mteb_result_json=str(path))
        n_q, n_d = prov.pop("counts")
        metrics = our_metrics(scores[0], prov["mteb_main_score"])
        searched = getattr(model, "searched", None)
        if searched is not None:
            prov.update(search=searched.info(model.top_k), empty_queries=len(searched.empty))
            if searched.depth is not None:  # MTEB scores every cutoff it knows; none deeper than our run may be reported
                deep = [m for m in metrics if "@" in m and m.split("@")[1].isdigit() and int(m.split("@")[1]) > searched.depth]
                metrics = {m: v for m, v in metrics.items() if m not in deep}
                prov["metrics_not_reported"] = deep
        return Scored(metrics, n_q, n_d, prov, {"mteb_evaluate_s": seconds, "mteb_evaluation_time_s": float(task_result.evaluation_time or 0.0)})

    def _load(self, task) -> dict:
        """Load the task's data (so a missing dataset fails clearly, before encoding); returns its provenance."""
        pinned = f"{task.metadata.dataset['path']}@{task.metadata.dataset['revision']}"
        try:
            task.load_data()
        except Exception as e:  # offline, gated, unknown revision …
            ours = _mteb_to_ours().get(self.mteb_name.lower(), "<name>")
            raise FileNotFoundError(f"MTEB could not load {self.mteb_name} ({pinned}): {type(e).__name__}: {e}. "
                                    f"Offline? Put the BEIR folder at --data-dir/{ours} (or $RETRIEVAL_DATA_DIR/{ours}).") from None
        data = task.dataset["default"][self.split] if "default" in task.dataset else next(iter(task.dataset.values()))[self.split]
        counts = (sum(1 for q in data["queries"]["id"] if data["relevant_docs"].get(q)), len(data["corpus"]))
        prov = {"counts": counts, "mteb_task": self.mteb_name, "mteb_main_score": task.metadata.main_score, "mteb_ignore_identical_ids": getattr(task, "ignore_identical_ids", None)}
        if self.folder:
            ds: BeirDataset = task.local_beir
            prov.update(data_source="local BEIR folder (MTEB's pinned revision NOT used)", dataset_path=str(ds.path), dataset_checksum=ds.checksum, corpus_checksum=ds.corpus_checksum,
                        unknown_qrels_docs=ds.unknown_qrels_docs, mteb_pinned_dataset=f"{pinned} (not used)")
        else:
            prov.update(data_source="MTEB (Hugging Face dataset at the pinned revision)", mteb_dataset=pinned)
        return prov
