"""Run our retrievers through MTEB: our encoders as MTEB models, local BEIR folders as MTEB task data.

    python evaluate.py --task mteb --mteb-tasks SciFact,NFCorpus --models minilm
    python evaluate.py --task mteb --mteb-tasks SciFact --models minilm --data-dir /work/shared/data   # offline

Pieces, each usable alone:

* :class:`MtebDenseModel` puts our ``DenseEncoder`` (``encode_queries`` / ``encode_documents``
  -> ``(n, dim)`` float32) under MTEB's ``EncoderProtocol``; MTEB then does the search itself
  (exact top-k by ``similarity``) and scores with pytrec_eval.
* :class:`MtebColbertSearch` puts our ``ColbertEncoder`` under MTEB's ``SearchProtocol``
  (``index`` the corpus, ``search`` the queries): exact MaxSim over the whole corpus.
* :func:`local_task` hands a BEIR folder to the MTEB task of the same data by replacing that
  task's ``load_data``. MTEB's pinned Hugging Face revision is then *not* what was scored, so the
  MTEB JSON's ``dataset_revision`` becomes ``local-beir-sha256:<our dataset checksum>`` and our
  result's provenance says where the data came from.
* :func:`run_mteb` (``--task mteb``): per task and model, ``mteb.evaluate`` (no MTEB result cache:
  cached scores of MTEB's data must never stand in for scores of a local folder, or back), then
  two result files, written before any table: MTEB's layout
  ``<output>/mteb/<model>/<revision>/<Task>.json`` (+ ``model_meta.json``, as ``mteb`` writes its
  cache; ``mteb.TaskResult.from_disk`` reads it) and our :class:`Result` (``task="mteb"``,
  dataset ``"<Task> (MTEB)"``) for the leaderboard.

A local BEIR folder is used when ``benchmarks.datasets.resolve`` finds one without downloading
(``--data-dir``, ``$RETRIEVAL_DATA_DIR``, the cache), named by ``REGISTRY[...].mteb_name``;
otherwise MTEB loads its own data (online, or from the user's Hugging Face cache).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import datasets as ds_registry
from benchmarks.config import EvalConfig, split_list
from benchmarks.data import BeirDataset, doc_text, load_beir
from benchmarks.results import Result, git_commit, library_versions, load_result, machine, save_result
from retrieval.store import cache_key

log = logging.getLogger(__name__)

LOCAL_REVISION_PREFIX = "local-beir-sha256:"


# --- models ---------------------------------------------------------------------------------


def _texts(inputs) -> list[str]:
    """The texts of an MTEB dataloader, in order (documents arrive as ``(title + " " + text).strip()``)."""
    return [t for batch in inputs for t in batch["text"]]


class MtebDenseModel:
    """Our single-vector encoder under MTEB's ``EncoderProtocol`` (structural; no MTEB base class).

    ``encode`` -> ``(n, dim)`` float32; queries and documents go through our own
    ``encode_queries`` / ``encode_documents`` (so our prefixes and dtype apply). With
    ``similarity="cos"`` the embeddings are already L2-normalised, so both similarities are
    inner products.
    """

    def __init__(self, encoder, meta):
        self.encoder = encoder
        self._meta = meta

    @property
    def mteb_model_meta(self):
        return self._meta

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None, **kwargs: Any) -> np.ndarray:
        from mteb.types import PromptType

        texts = _texts(inputs)
        if prompt_type == PromptType.query:
            return self.encoder.encode_queries(texts)
        return self.encoder.encode_documents(texts)  # documents, and tasks without a prompt type

    def similarity(self, embeddings1, embeddings2) -> torch.Tensor:
        """``(n1, dim), (n2, dim) -> (n1, n2)`` inner products."""
        return torch.as_tensor(np.asarray(embeddings1, dtype=np.float32)) @ torch.as_tensor(np.asarray(embeddings2, dtype=np.float32)).T

    def similarity_pairwise(self, embeddings1, embeddings2) -> torch.Tensor:
        """``(n, dim), (n, dim) -> (n,)``."""
        return (torch.as_tensor(np.asarray(embeddings1, dtype=np.float32)) * torch.as_tensor(np.asarray(embeddings2, dtype=np.float32))).sum(-1)


class MtebColbertSearch:
    """Our ColBERT encoder under MTEB's ``SearchProtocol``: exact MaxSim top-k over the indexed corpus.

    ``index`` keeps every document's token embeddings flat (``(T, dim)`` plus ``(D,)`` lengths);
    ``search`` scores in chunks of ``chunk_docs`` documents with ``retrieval.maxsim.maxsim_search``.
    """

    def __init__(self, encoder, meta, *, chunk_docs: int = 2048):
        self.encoder = encoder
        self._meta = meta
        self.chunk_docs = chunk_docs
        self._ids: list[str] = []
        self._tokens: np.ndarray | None = None  # (T, dim)
        self._lengths: np.ndarray | None = None  # (D,)

    @property
    def mteb_model_meta(self):
        return self._meta

    def index(self, corpus, *, task_metadata, hf_split: str, hf_subset: str, encode_kwargs, num_proc=None, **kwargs: Any) -> None:
        self._ids = list(corpus["id"])
        titles = corpus["title"] if "title" in corpus.column_names else [""] * len(self._ids)
        texts = [doc_text({"title": t or "", "text": x}) for t, x in zip(titles, corpus["text"])]  # MTEB's document text
        embs = self.encoder.encode_documents(texts)
        self._lengths = np.array([len(e) for e in embs], dtype=np.int64)
        self._tokens = np.concatenate(embs) if embs else np.zeros((0, 1), np.float32)

    def search(self, queries, *, task_metadata, hf_split: str, hf_subset: str, top_k: int, encode_kwargs, top_ranked=None, num_proc=None, **kwargs: Any) -> dict[str, dict[str, float]]:
        from retrieval.maxsim import maxsim_search, pad_queries

        if self._tokens is None:
            raise ValueError("index the corpus before searching")
        if top_ranked is not None:
            raise ValueError("MtebColbertSearch does full-corpus search only; reranking tasks (top_ranked) are not supported")
        qids = list(queries["id"])
        q, q_mask = pad_queries(self.encoder.encode_queries(list(queries["text"])))  # (Q, Lq, dim), (Q, Lq)
        starts = np.concatenate([[0], np.cumsum(self._lengths)])

        def chunks():
            for lo in range(0, len(self._ids), self.chunk_docs):
                hi = min(lo + self.chunk_docs, len(self._ids))
                yield lo, self._tokens[starts[lo] : starts[hi]], self._lengths[lo:hi]

        D, I = maxsim_search(q, q_mask, chunks(), min(top_k, len(self._ids)))
        return {qid: {self._ids[i]: float(s) for s, i in zip(D[r], I[r]) if i >= 0} for r, qid in enumerate(qids)}


def model_meta(name: str, revision: str, *, encoder_kind: str, embed_dim: int | None, max_tokens: int | None, similarity: str):
    """MTEB's ``ModelMeta`` for one of our models (name and revision name the result folder)."""
    from mteb.models import ModelMeta
    from mteb.models.model_meta import ScoringFunction

    return ModelMeta.create_empty(
        overwrites=dict(
            name=name,
            revision=revision.replace(":", "-"),  # a folder name everywhere
            embed_dim=embed_dim,
            max_tokens=max_tokens,
            similarity_fn_name={"cos": ScoringFunction.COSINE, "dot": ScoringFunction.DOT_PRODUCT, "maxsim": ScoringFunction.MAX_SIM}[similarity],
            framework=["PyTorch", "Sentence Transformers"],
            modalities=["text"],
            model_type=["late-interaction"] if encoder_kind == "colbert" else ["dense"],
        )
    )


def as_mteb_model(loaded, cfg: EvalConfig):
    """A ``runner.LoadedModel`` -> the MTEB model for ``cfg.encoder`` (dpr: EncoderProtocol, colbert: SearchProtocol)."""
    if cfg.encoder == "colbert":
        enc = loaded.encoder
        meta = model_meta(loaded.name, loaded.provenance["model_revision"], encoder_kind="colbert", embed_dim=enc.dim, max_tokens=enc.doc_length, similarity="maxsim")
        return MtebColbertSearch(enc, meta)
    enc = loaded.encoder
    meta = model_meta(loaded.name, loaded.provenance["model_revision"], encoder_kind="dpr", embed_dim=enc.model.get_sentence_embedding_dimension(), max_tokens=enc.max_length, similarity=cfg.similarity)
    return MtebDenseModel(enc, meta)


# --- tasks ----------------------------------------------------------------------------------


def get_task(name: str, split: str):
    """MTEB's task ``name`` evaluated on ``split``; an unknown name raises ValueError with MTEB's "did you mean"."""
    import mteb

    try:
        task = mteb.get_task(name)
    except KeyError as e:
        raise ValueError(f"unknown MTEB task {name!r}: {e.args[0] if e.args else e}") from None
    if split not in task.metadata.eval_splits:
        log.info("%s: evaluating split %r (MTEB's own splits: %s)", name, split, list(task.metadata.eval_splits))
    return task.filter_eval_splits([split])


def beir_split_data(ds: BeirDataset) -> dict:
    """Our loaded BEIR split -> MTEB's ``RetrievalSplitData`` (``datasets.Dataset`` corpus/queries, qrels dict)."""
    from datasets import Dataset

    doc_ids = list(ds.corpus)
    corpus = Dataset.from_dict({"id": doc_ids, "title": [ds.corpus[d]["title"] for d in doc_ids], "text": [ds.corpus[d]["text"] for d in doc_ids]})
    qids = list(ds.queries)
    queries = Dataset.from_dict({"id": qids, "text": [ds.queries[q] for q in qids]})
    return {"corpus": corpus, "queries": queries, "relevant_docs": {q: dict(d) for q, d in ds.qrels.items()}, "top_ranked": None}


def local_task(name: str, folder: Path, split: str = "test"):
    """MTEB's retrieval task ``name`` reading the BEIR folder ``folder`` instead of its Hugging Face data.

    The task's ``load_data`` is replaced on this instance only (MTEB still calls it, times it and
    unloads afterwards); it loads ``split`` with our validated loader. The loaded
    :class:`BeirDataset` is kept as ``task.local_beir`` (checksum, counts) once loaded.

    >>> task = local_task("SciFact", Path("/work/shared/data/scifact"))   # doctest: +SKIP
    >>> mteb.evaluate(model, task, cache=None)                            # doctest: +SKIP
    """
    from mteb.abstasks import AbsTaskRetrieval

    task = get_task(name, split)
    if not isinstance(task, AbsTaskRetrieval):
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


@dataclass(frozen=True)
class TaskSource:
    """Which MTEB task to run and where its data comes from (``folder=None``: MTEB's own loading)."""

    mteb_name: str
    folder: Path | None


def _mteb_to_ours() -> dict[str, str]:
    return {s.mteb_name.lower(): name for name, s in ds_registry.REGISTRY.items() if s.mteb_name}


def _local_folder(our_name: str, data_dir: str | None) -> Path | None:
    try:
        return ds_registry.resolve(our_name, data_dir, download=False)
    except FileNotFoundError:
        return None


def task_sources(cfg: EvalConfig) -> list[TaskSource]:
    """``--mteb-tasks`` (or the MTEB names of ``--datasets``, or SciFact) with a local BEIR folder where one is found."""
    if cfg.mteb_tasks:
        ours = _mteb_to_ours()
        out = []
        for name in split_list(cfg.mteb_tasks):
            our_name = ours.get(name.lower())
            out.append(TaskSource(name, _local_folder(our_name, cfg.data_dir) if our_name else None))
        return out
    if not cfg.datasets:
        return task_sources(dataclasses.replace(cfg, mteb_tasks="SciFact"))
    out = []
    for spec in split_list(cfg.datasets):
        folder = ds_registry.resolve(spec, cfg.data_dir, download=False) if ("/" in spec or Path(spec).is_dir()) else _local_folder(spec, cfg.data_dir)
        mteb_name = ds_registry.spec_for(folder.name if folder else spec).mteb_name
        if mteb_name is None:
            raise ValueError(f"dataset {spec!r} has no MTEB task in benchmarks.datasets.REGISTRY; pass --mteb-tasks")
        out.append(TaskSource(mteb_name, folder))
    return out


# --- results --------------------------------------------------------------------------------

_AT_K = re.compile(r"(ndcg|recall|map|mrr|precision)_at_(\d+)")


def our_metrics(scores: dict, main_score: str) -> dict[str, float]:
    """MTEB's score dict -> our metrics: the ones our BEIR results carry (``ndcg_at_10`` -> ``ndcg@10``), plus the main score.

    MTEB reports ~80 numbers per retrieval task (nAUCs, precision@k, hit rates …; some NaN); the
    MTEB JSON keeps them all, the leaderboard gets the comparable ones. A non-retrieval task keeps
    its main score under MTEB's name.
    """
    from retrieval.metrics import MetricSpec

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


def mteb_result_path(output: Path, meta, task_name: str) -> Path:
    """``<output>/mteb/<model>/<revision>/<Task>.json``: the layout of MTEB's result cache and results repository."""
    return Path(output) / "mteb" / meta.model_name_as_path() / meta.revision / f"{task_name}.json"


def save_mteb_result(task_result, meta, output: Path) -> Path:
    """Write MTEB's ``TaskResult`` JSON and ``model_meta.json`` next to it (atomically), as ``ResultCache.save_to_cache`` lays them out."""
    path = mteb_result_path(output, meta, task_result.task_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    task_result.to_disk(tmp)
    os.replace(tmp, path)
    tmp = path.parent / ".model_meta.json.tmp"
    tmp.write_text(json.dumps(meta.to_dict(), default=str, indent=4))
    os.replace(tmp, path.parent / "model_meta.json")
    return path


def _loaded_counts(task, split: str) -> tuple[int, int]:
    data = task.dataset["default"][split] if "default" in task.dataset else next(iter(task.dataset.values()))[split]
    n_queries = sum(1 for q in data["queries"]["id"] if data["relevant_docs"].get(q))
    return n_queries, len(data["corpus"])


def evaluate_task(model, source: TaskSource, cfg: EvalConfig, encode_kwargs: dict | None = None):
    """One ``mteb.evaluate`` run. Returns (MTEB ``TaskResult``, task provenance, (num_queries, num_docs), seconds)."""
    import mteb

    task = local_task(source.mteb_name, source.folder, cfg.split) if source.folder else get_task(source.mteb_name, cfg.split)
    pinned = task.metadata.dataset["revision"]
    t = time.perf_counter()
    try:
        task.load_data()
    except Exception as e:  # offline, gated, unknown revision …
        ours = _mteb_to_ours().get(source.mteb_name.lower(), "<name>")
        raise FileNotFoundError(
            f"MTEB could not load {source.mteb_name} ({task.metadata.dataset['path']}@{pinned}): {type(e).__name__}: {e}. "
            f"Offline? Put the BEIR folder at --data-dir/{ours} (or $RETRIEVAL_DATA_DIR/{ours})."
        ) from None
    counts = _loaded_counts(task, cfg.split)
    kwargs = {"batch_size": cfg.batch_size, "show_progress_bar": False, **(encode_kwargs or {})}
    res = mteb.evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False, encode_kwargs=kwargs, show_progress_bar=False)
    seconds = time.perf_counter() - t
    if res.exceptions:
        raise RuntimeError(f"MTEB failed on {source.mteb_name}: {res.exceptions[0].exception}")
    (task_result,) = res.task_results
    if source.folder:
        ds: BeirDataset = task.local_beir
        task_result.dataset_revision = LOCAL_REVISION_PREFIX + ds.checksum
        prov = {
            "data_source": "local BEIR folder (MTEB's pinned revision NOT used)",
            "dataset_path": str(ds.path),
            "dataset_checksum": ds.checksum,
            "corpus_checksum": ds.corpus_checksum,
            "unknown_qrels_docs": ds.unknown_qrels_docs,
            "mteb_pinned_dataset": f"{task.metadata.dataset['path']}@{pinned} (not used)",
        }
    else:
        prov = {"data_source": "MTEB (Hugging Face dataset at the pinned revision)", "mteb_dataset": f"{task.metadata.dataset['path']}@{pinned}"}
    task.unload_data()
    prov.update(mteb_task=source.mteb_name, mteb_main_score=task.metadata.main_score, mteb_ignore_identical_ids=getattr(task, "ignore_identical_ids", None))
    return task_result, prov, counts, seconds


def _data_identity(source: TaskSource, split: str) -> str:
    if source.folder:
        from benchmarks.data import dataset_checksum

        return "local:" + dataset_checksum(source.folder, split)
    return "mteb:" + source.mteb_name


def run_mteb(cfg: EvalConfig) -> list[Result]:
    """``--task mteb``: every (MTEB task, model) through ``mteb.evaluate``; MTEB JSON + our Result JSON; leaderboard."""
    import mteb

    from benchmarks.leaderboard import write_leaderboard
    from benchmarks.runner import LoadedModel, _load_model

    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = task_sources(cfg)
    for s in sources:  # fail on a wrong task name before loading any model
        get_task(s.mteb_name, cfg.split)
    specs = [m for m in split_list(cfg.models) if m != "bm25"]
    if len(specs) < len(split_list(cfg.models)):
        log.warning("--task mteb: skipping bm25 (it is not an MTEB encoder here; use --task beir)")
    if not specs:
        raise ValueError("--task mteb needs at least one neural model in --models")
    common_prov = {"git_commit": git_commit(), "libraries": library_versions(), "machine": machine()}
    models: dict[str, tuple[LoadedModel, object]] = {}
    results: list[Result] = []
    for source in sources:
        where = f"local folder {source.folder}" if source.folder else "MTEB's Hugging Face data"
        for spec in specs:
            if spec not in models:
                loaded = _load_model(spec, cfg)
                models[spec] = (loaded, as_mteb_model(loaded, cfg))
            loaded, mmodel = models[spec]
            dataset = f"{source.mteb_name} (MTEB)"
            key = cache_key(task="mteb", mteb_task=source.mteb_name, data=_data_identity(source, cfg.split), split=cfg.split, model=loaded.identity, encoder=cfg.encoder, batch_size=cfg.batch_size, mteb=mteb.__version__)
            result = Result(model=loaded.name, encoder=cfg.encoder, dataset=dataset, split=cfg.split, task="mteb", metrics={}, num_queries=0, num_docs=0, config_key=key)
            path = out_dir / f"{result.stem}.json"
            if path.is_file() and not cfg.no_cache:
                cached = load_result(path)
                if cached.config_key == key:
                    log.info("cached: %s on %s nDCG@10=%.4f", loaded.name, dataset, cached.metrics.get("ndcg@10", float("nan")))
                    results.append(cached)
                    continue
            log.info("MTEB %s (%s) with %s (%s)", source.mteb_name, where, loaded.name, cfg.encoder)
            task_result, task_prov, (n_q, n_d), seconds = evaluate_task(mmodel, source, cfg)
            mteb_path = save_mteb_result(task_result, mmodel.mteb_model_meta, out_dir)
            scores = task_result.scores[cfg.split]
            if len(scores) != 1:
                log.warning("%s has %d subsets; our result keeps the first (%s), the MTEB JSON has all", source.mteb_name, len(scores), scores[0]["hf_subset"])
            result.metrics = our_metrics(scores[0], task_prov["mteb_main_score"])
            result.num_queries, result.num_docs = n_q, n_d
            result.timings = {"total_s": seconds, "mteb_evaluation_time_s": float(task_result.evaluation_time or 0.0)}
            result.provenance = {**common_prov, **loaded.provenance, **task_prov, "mteb_version": task_result.mteb_version, "mteb_dataset_revision_field": task_result.dataset_revision, "mteb_result_json": str(mteb_path)}
            save_result(result, out_dir)
            log.info("%s on %s: nDCG@10=%.4f in %.1fs (MTEB JSON: %s)", loaded.name, dataset, result.metrics.get("ndcg@10", float("nan")), seconds, mteb_path)
            results.append(result)
    write_leaderboard(out_dir)
    return results
