"""Build the training set: examples -> mined negatives -> a ``datasets.Dataset`` whose columns the loss reads.

    contrastive losses (mnrl, cmnrl, contrastive, cached-contrastive):
        anchor, positive, negative_1 .. negative_k       (k = negatives per example)
    distillation:
        query, documents (positive + n_ways-1 negatives), scores (teacher, one per document)

``stats`` records where the examples came from (source, checksum, counts, mining) for the run's result file.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from encoders.dpr import DenseEncoder, DenseEncoderConfig
from encoders.training.config import TrainConfig
from encoders.training.data import MSMARCO, Examples, beir_examples, load_jsonl_examples, load_msmarco, parse_train_data
from encoders.training.mining import MiningConfig, mine_pool, negatives_for_pairs, pool_stats
from encoders.training.models import load_dense, model_identity
from retrieval.beir import BeirDataset, doc_text, file_sha256, load_beir
from retrieval.sources import cache_dir, resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSet:
    dataset: object  # datasets.Dataset with the loss's columns
    stats: dict  # provenance: source, checksum, pairs, mining


def build_train_set(cfg: TrainConfig, mining: MiningConfig, loss: str) -> TrainSet:
    """Examples -> mined negatives -> a ``datasets.Dataset`` whose columns the loss reads."""
    import datasets  # lazy: datasets is slow to import; only building the train set needs it

    src = parse_train_data(cfg.train_data)
    if src.kind == "msmarco":
        return _msmarco_train_set(cfg, loss)
    stats: dict = {"train_data": cfg.train_data}
    ex, ds = _load_examples(src, cfg, stats)
    keep = _subsample(len(ex.queries), cfg.max_examples, cfg.seed)
    ex = _select(ex, keep)
    stats["examples"] = len(keep)

    negatives = ex.negatives
    if ds is not None and mining.method != "none":
        negatives = _mine_negatives(ex, ds, cfg, mining, stats)
    want = _negatives_wanted(negatives, cfg, mining, loss, from_beir=ds is not None)
    rows = [i for i in range(len(ex.queries)) if len(negatives[i]) >= want]
    if len(rows) < len(ex.queries):
        log.warning("%d of %d examples have fewer than %d negatives and are dropped", len(ex.queries) - len(rows), len(ex.queries), want)
    stats["examples_used"] = len(rows)
    stats["negatives_per_example"] = want
    if not rows:
        raise ValueError(f"no training example has {want} negatives; lower --mine-count or widen the rank window")

    if loss == "distillation":
        docs = [[ex.positives[i]] + negatives[i][:want] for i in rows]
        scores = teacher_scores([ex.queries[i] for i in rows], docs, cfg)
        return TrainSet(datasets.Dataset.from_dict({"query": [ex.queries[i] for i in rows], "documents": docs, "scores": scores}), stats)
    cols = {"anchor": [ex.queries[i] for i in rows], "positive": [ex.positives[i] for i in rows]}
    for j in range(want):
        cols[f"negative_{j + 1}"] = [negatives[i][j] for i in rows]
    return TrainSet(datasets.Dataset.from_dict(cols), stats)


def _load_examples(src, cfg: TrainConfig, stats: dict) -> tuple[Examples, BeirDataset | None]:
    """JSONL examples (no dataset to mine from) or BEIR qrels pairs with their dataset; adds checksum etc. to ``stats``."""
    if src.kind == "jsonl":
        ex = load_jsonl_examples(src.name)  # first: a missing file is a DataError naming it
        stats["checksum"] = file_sha256(Path(src.name))
        return ex, None
    ds = load_beir(resolve(src.name, cfg.data_dir), src.split)
    stats.update(checksum=ds.checksum, dataset=ds.name, split=ds.split)
    return beir_examples(ds), ds


def _subsample(n: int, k: int, seed: int) -> list[int]:
    """``k`` of ``range(n)``, seeded, in original order (all when ``k`` is 0 or >= n)."""
    if not k or k >= n:
        return list(range(n))
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=g)[:k].tolist())


def _select(ex: Examples, keep: list[int]) -> Examples:
    """The examples at indices ``keep``."""
    return Examples([ex.queries[i] for i in keep], [ex.positives[i] for i in keep], [ex.negatives[i] for i in keep],
                    [ex.qids[i] for i in keep] if ex.qids else None, [ex.pos_ids[i] for i in keep] if ex.pos_ids else None)


def _cache_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else cache_dir()


def _mine_negatives(ex: Examples, ds: BeirDataset, cfg: TrainConfig, mining: MiningConfig, stats: dict) -> list[list[str]]:
    """Mined negative texts per example (BEIR data only); adds the mining record to ``stats``."""
    qids = sorted(set(ex.qids))
    pool = mine_pool(
        ds.corpus, {q: ds.queries[q] for q in qids}, ds.qrels, mining,
        data_checksum=ds.checksum, cache_dir=_cache_dir(cfg),
        load_model=lambda: load_dense(mining.model or cfg.model, cfg, mining.max_length)[0],
        model_identity=model_identity(mining.model or cfg.model) if mining.method == "dense" else None,
    )
    neg_ids = negatives_for_pairs(list(zip(ex.qids, ex.pos_ids)), pool, ds.qrels, mining, seed=cfg.seed)
    stats["mining"] = {**asdict(mining), **pool_stats(neg_ids, mining.count)}
    return [[doc_text(ds.corpus[d]) for d in ids] for ids in neg_ids]


def _negatives_wanted(negatives: list[list[str]], cfg: TrainConfig, mining: MiningConfig, loss: str, *, from_beir: bool) -> int:
    """Negatives every kept example must have; examples with fewer are dropped."""
    if loss == "distillation":
        return cfg.n_ways - 1
    if from_beir:  # BEIR data: every example gets --mine-count negatives (0 when not mining)
        return 0 if mining.method == "none" else mining.count
    # given negatives (JSONL): as many as every example has, at most --mine-count
    return min(mining.count, min(len(n) for n in negatives))


def teacher_scores(queries: list[str], docs: list[list[str]], cfg: TrainConfig) -> list[list[float]]:
    """``teacher_scale * cos(teacher(query), teacher(doc))`` for each query's documents ``(n, n_ways)``."""
    model, _ = load_dense(cfg.teacher, cfg, cfg.max_length)
    enc = DenseEncoder(model, DenseEncoderConfig(similarity="cos"))
    uniq = sorted({d for row in docs for d in row})
    row_of = {d: i for i, d in enumerate(uniq)}
    d_emb = enc.encode_documents(uniq)  # (U, dim)
    q_emb = enc.encode_queries(queries)  # (n, dim)
    return [[float(cfg.teacher_scale * (q_emb[i] @ d_emb[row_of[d]])) for d in row] for i, row in enumerate(docs)]


def _msmarco_train_set(cfg: TrainConfig, loss: str) -> TrainSet:
    """The paper's MS MARCO data; for ColBERT, KD rows whose queries and documents are looked up on the fly."""
    ds = load_msmarco(cfg.encoder)
    if cfg.max_examples:
        ds = ds.shuffle(seed=cfg.seed).select(range(min(cfg.max_examples, len(ds))))
    if cfg.encoder == "colbert":
        import datasets  # lazy: datasets is slow to import; only building the train set needs it
        from pylate import utils  # lazy: pylate pulls fast-plaid; only ColBERT needs it

        repo = MSMARCO["colbert"][0]
        queries = datasets.load_dataset(repo, "queries", split="train")
        documents = datasets.load_dataset(repo, "documents", split="train")
        ds.set_transform(utils.KDProcessing(queries=queries, documents=documents, n_ways=cfg.n_ways).transform)
    return TrainSet(ds, {"train_data": "msmarco", "dataset": MSMARCO[cfg.encoder], "examples": len(ds)})
