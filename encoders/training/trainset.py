"""Build the training set: examples -> mined negatives -> a ``datasets.Dataset`` whose columns the loss reads.

    contrastive losses (mnrl, cmnrl, contrastive, cached-contrastive):
        anchor, positive, negative_1 .. negative_k       (k = negatives per example)
        doc_ids, relevant_ids                            (--mask-false-negatives, on by default: ids of the
                                                          example's documents and of its query's relevant ones)
    distillation, cached-distillation:
        query, documents (positive + n_ways-1 negatives), scores (teacher, one per document)
        doc_ids, relevant_ids                            (--distill-in-batch with the false-negative mask)

``stats`` records where the examples came from (source, checksum, counts, mining) for the run's result file.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from encoders.training.config import DISTILLATION_LOSSES, TrainConfig
from encoders.training.data import MSMARCO, Examples, beir_examples, load_jsonl_examples, load_msmarco, load_saved_examples, parse_train_data, saved_checksum, saved_split
from encoders.training.contrastive import DOC_IDS, RELEVANT_IDS
from encoders.training.mining import MiningConfig, mine_guide_scores, mine_pool, negatives_for_pairs, pool_stats, ratio_on
from encoders.training.models import load_dense, model_identity
from encoders.training.teachers import teacher_scores
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

    src = parse_train_data(cfg.train_data, cfg.data_dir)
    if src.kind == "msmarco":
        return _msmarco_train_set(cfg, loss)
    stats: dict = {"train_data": cfg.train_data}
    ex, ds = _load_examples(src, cfg, stats)
    if cfg.max_pairs_per_query:
        keep = cap_per_query(ex.qids or ex.queries, cfg.max_pairs_per_query, cfg.seed)
        log.info("--max-pairs-per-query %d: %d of %d examples kept", cfg.max_pairs_per_query, len(keep), len(ex.queries))
        stats["pairs_per_query_cap"] = {"cap": cfg.max_pairs_per_query, "before": len(ex.queries), "after": len(keep)}
        ex = _select(ex, keep)
    keep = _subsample(len(ex.queries), cfg.max_examples, cfg.seed)
    ex = _select(ex, keep)
    stats["examples"] = len(keep)

    negatives, neg_ids = ex.negatives, None
    mined = ds is not None and mining.method != "none"
    want = _negatives_wanted(negatives, cfg, mining, loss, from_beir=ds is not None)
    if mined and want > mining.count:  # fail before mining: every example would come back with --mine-count negatives
        raise ValueError(f"--n-ways {cfg.n_ways} scores the positive and {want} mined negatives per query, but --mine-count "
                         f"is {mining.count}: pass --mine-count {want} (or more), or lower --n-ways")
    if mined:
        negatives, neg_ids = _mine_negatives(ex, ds, cfg, mining, stats)
    rows = [i for i in range(len(ex.queries)) if len(negatives[i]) >= want]
    if len(rows) < len(ex.queries):
        log.warning("%d of %d examples have fewer than %d negatives and are dropped", len(ex.queries) - len(rows), len(ex.queries), want)
    stats["examples_used"] = len(rows)
    stats["negatives_per_example"] = want
    if not rows:
        raise ValueError(f"no training example has {want} negatives; lower --mine-count or widen the rank window")

    if loss in DISTILLATION_LOSSES:
        docs = [[ex.positives[i]] + negatives[i][:want] for i in rows]
        corpus = [doc_text(d) for d in ds.corpus.values()] if ds is not None else None  # bm25 teachers: IDF from the training corpus
        scores = teacher_scores([ex.queries[i] for i in rows], docs, cfg, corpus=corpus)
        cols = {"query": [ex.queries[i] for i in rows], "documents": docs, "scores": scores}
        if cfg.distill_in_batch and cfg.mask_false_negatives:  # the in-batch term masks other queries' candidates relevant to the query
            cols.update(_id_columns(ex, rows, negatives, neg_ids, ds, want, stats))
        return TrainSet(datasets.Dataset.from_dict(cols), stats)
    cols = {"anchor": [ex.queries[i] for i in rows], "positive": [ex.positives[i] for i in rows]}
    for j in range(want):
        cols[f"negative_{j + 1}"] = [negatives[i][j] for i in rows]
    if cfg.mask_false_negatives:
        cols.update(_id_columns(ex, rows, negatives, neg_ids, ds, want, stats))
    return TrainSet(datasets.Dataset.from_dict(cols), stats)


def _id_columns(ex: Examples, rows: list[int], negatives: list[list[str]], neg_ids: list[list[str]] | None,
                ds: BeirDataset | None, want: int, stats: dict) -> dict[str, list[list[int]]]:
    """``DOC_IDS`` and ``RELEVANT_IDS`` columns for the in-batch false-negative mask (encoders/training/contrastive.py).

    BEIR: corpus positions, a query's relevant documents from its qrels (score > 0). JSONL and saved
    datasets have no ids: a text is its own id, and a query's relevant documents are the positives
    of every example with the same query text.
    """
    if ds is not None:
        index = {d: i for i, d in enumerate(ds.corpus)}
        rel = {q: sorted(index[d] for d, s in ds.qrels.get(q, {}).items() if s > 0 and d in index) for q in {ex.qids[i] for i in rows}}
        doc_ids = [[index[ex.pos_ids[i]]] + [index[d] for d in (neg_ids[i][:want] if neg_ids else [])] for i in rows]
        relevant = [rel[ex.qids[i]] for i in rows]
        source = "qrels"
    else:
        text_id: dict[str, int] = {}
        doc_ids = [[text_id.setdefault(t, len(text_id)) for t in [ex.positives[i], *negatives[i][:want]]] for i in rows]
        by_query: dict[str, set[int]] = {}
        for i, ids in zip(rows, doc_ids):
            by_query.setdefault(ex.queries[i], set()).add(ids[0])
        relevant = [sorted(by_query[ex.queries[i]]) for i in rows]
        source = "positives of the same query text"
    sizes = [len(r) for r in relevant]
    stats["false_negative_mask"] = {"ids": source, "mean_relevant_per_example": round(sum(sizes) / len(sizes), 2), "max_relevant": max(sizes)}
    log.info("false-negative mask on: in-batch documents relevant to a query (%s; %.1f per example on average, max %d) are left out of its softmax",
             source, sum(sizes) / len(sizes), max(sizes))
    return {DOC_IDS: doc_ids, RELEVANT_IDS: relevant}


def _load_examples(src, cfg: TrainConfig, stats: dict) -> tuple[Examples, BeirDataset | None]:
    """JSONL or save_to_disk examples (no dataset to mine from) or BEIR qrels pairs with their dataset; adds checksum etc. to ``stats``."""
    if src.kind == "jsonl":
        ex = load_jsonl_examples(src.name)  # first: a missing file is a DataError naming it
        stats["checksum"] = file_sha256(Path(src.name))
        return ex, None
    if src.kind == "saved":  # a datasets save_to_disk folder: subsampled while read (it may be MS MARCO-sized)
        rows = saved_split(src.name, src.split)
        ex = load_saved_examples(src.name, src.split, pick=lambda n: _subsample(n, cfg.max_examples, cfg.seed))
        stats.update(checksum=saved_checksum(rows), dataset=str(rows))
        return ex, None
    ds = load_beir(resolve(src.name, cfg.data_dir), src.split)
    stats.update(checksum=ds.checksum, dataset=ds.name, split=ds.split)
    return beir_examples(ds), ds


def cap_per_query(keys: list[str], cap: int, seed: int) -> list[int]:
    """Indices keeping at most ``cap`` examples per key (qid, or query text without ids), seeded, in original order.

    Each key's examples are shuffled with one seeded permutation of all indices, so the pick does
    not depend on the order keys appear in.
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(keys), generator=g).tolist()
    taken: Counter[str] = Counter()
    keep = []
    for i in order:
        if taken[keys[i]] < cap:
            taken[keys[i]] += 1
            keep.append(i)
    return sorted(keep)


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


def _mine_negatives(ex: Examples, ds: BeirDataset, cfg: TrainConfig, mining: MiningConfig, stats: dict) -> tuple[list[list[str]], list[list[str]]]:
    """Mined negative texts and doc ids per example (BEIR data only); adds the mining record (with each filter's removals) to ``stats``."""
    qids = sorted(set(ex.qids))
    queries = {q: ds.queries[q] for q in qids}
    pool = mine_pool(
        ds.corpus, queries, ds.qrels, mining,
        data_checksum=ds.checksum, cache_dir=_cache_dir(cfg),
        load_model=lambda: load_dense(mining.model or cfg.model, cfg, mining.max_length, flag="--mine-model",
                                      other=" (its default is the model being trained), or pass --mine-method bm25")[0],
        model_identity=model_identity(mining.model or cfg.model) if mining.method == "dense" else None,
    )
    guide = None
    if cfg.guide:
        guide = mine_guide_scores(ds.corpus, queries, ds.qrels, pool, load_guide=lambda: load_dense(cfg.guide, cfg, mining.max_length, flag="--guide")[0],
                                  guide_identity=model_identity(cfg.guide), data_checksum=ds.checksum, cache_dir=_cache_dir(cfg), max_length=mining.max_length)
    neg_ids, removed = negatives_for_pairs(list(zip(ex.qids, ex.pos_ids)), pool, ds.qrels, mining, seed=cfg.seed, guide=guide)
    scores = "BM25 scores" if mining.method == "bm25" else f"cosine of {mining.model or cfg.model}"
    log.info("mining filters (%s, %d pairs), candidates removed: qrels positives %d, above rank window (< %d) %d, above positive - margin %d, "
             "above %s x positive (TopK-PercPos) %d, guide %d; pairs with no positive score (no score filter) %d",
             scores, len(neg_ids), removed["qrels_positive"], mining.rank_start, removed["rank_window"], removed["above_margin"],
             mining.max_ratio if ratio_on(mining) else "off", removed["above_ratio"], removed["guide"], removed["pos_score_unknown"])
    stats["mining"] = {**asdict(mining), "guide": cfg.guide, "scores": scores, "removed": removed, **pool_stats(neg_ids, mining.count)}
    return [[doc_text(ds.corpus[d]) for d in ids] for ids in neg_ids], neg_ids


def _negatives_wanted(negatives: list[list[str]], cfg: TrainConfig, mining: MiningConfig, loss: str, *, from_beir: bool) -> int:
    """Negatives every kept example must have; examples with fewer are dropped."""
    if loss in DISTILLATION_LOSSES:
        return cfg.n_ways - 1
    if from_beir:  # BEIR data: every example gets --mine-count negatives (0 when not mining)
        return 0 if mining.method == "none" else mining.count
    # given negatives (JSONL): as many as every example has, at most --mine-count
    return min(mining.count, min(len(n) for n in negatives))


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
