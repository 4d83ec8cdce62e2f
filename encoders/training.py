"""Fine-tune a DPR (sentence-transformers) or ColBERT (PyLate) retriever.

    TrainConfig + MiningConfig -> examples (BEIR qrels / JSONL / MS MARCO) -> mined negatives
    -> datasets.Dataset -> loss -> RetrievalTrainer (StableAdamW, WSD schedule, no-duplicate
    batches, optional batch-size warmup) -> checkpoints -> final model in ``output/``.

Both encoders train through ``SentenceTransformerTrainer`` (PyLate's ColBERT is a
SentenceTransformer), so checkpointing and ``--resume`` are the trainer's own: a killed run
continues from ``output/checkpoints/checkpoint-N`` with optimiser, scheduler and RNG state.
The final model is saved in its native format: ``SentenceTransformer(output)`` or
``pylate.models.ColBERT(output)`` loads it, and ``evaluate.py --models output`` evaluates it.

Losses (ModernBERT paper, arXiv 2412.13663, appendix on retrieval fine-tuning):
    dpr:     mnrl (InfoNCE with in-batch + hard negatives, van den Oord et al. 2018),
             cmnrl (the same with GradCache, Gao et al. 2021: batch >> memory)
    colbert: contrastive, cached-contrastive, distillation (KL to teacher scores, PyLate)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.config import flag_field as _f
from encoders.mining import MiningConfig, mine_pool, negatives_for_pairs, pool_stats
from encoders.schedule import batch_plan, warmup_batch_size, wsd_factor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = _f("dpr", "dpr (single vector, sentence-transformers) | colbert (multi-vector, PyLate)")
    model: str = _f("minilm", "student: an alias (minilm), a local folder (ST, PyLate or plain Hugging Face)")
    train_data: str = _f("scifact", "BEIR name or folder [:split] (default split train) | FILE.jsonl | msmarco | a save_to_disk folder")
    data_dir: str | None = _f(None, "folder holding BEIR datasets by name (as evaluate.py)")
    output: str = _f("runs/train", "final model goes here; checkpoints in OUTPUT/checkpoints")
    loss: str = _f("auto", "dpr: mnrl | cmnrl; colbert: contrastive | cached-contrastive | distillation; auto: cached when --mini-batch-size < --batch-size, distillation when --teacher is set")
    lr: float = _f(2e-5, "peak learning rate")
    epochs: float = _f(1.0, "passes over the training examples")
    max_steps: int = _f(-1, "stop after this many optimiser steps (overrides --epochs when > 0)")
    batch_size: int = _f(32, "examples per step (in-batch negatives come from the whole batch)")
    mini_batch_size: int = _f(32, "GradCache chunk for cached losses: memory scales with this, not with --batch-size")
    max_examples: int = _f(0, "subsample this many training examples (seeded; 0: all)")
    seed: int = _f(42, "seeds model init, data order, mining sampling and dropout")
    max_length: int = _f(256, "dpr: max tokens per text while training")
    save_max_length: int | None = _f(None, "dpr: max_seq_length written into the saved model (default: --max-length); e.g. train at 128, encode at 256")
    query_length: int = _f(32, "colbert: query tokens ([MASK]-expanded)")
    doc_length: int = _f(256, "colbert: max document tokens while training")
    optimizer: str = _f("stableadamw", "stableadamw (torch-optimi, as ModernBERT) | adamw (torch)")
    weight_decay: float = _f(0.01, "decoupled weight decay (not on biases and norms)")
    warmup_frac: float = _f(0.05, "fraction of steps warming the LR up linearly (paper: 5%)")
    decay_frac: float = _f(0.2, "fraction of final steps decaying the LR with 1-sqrt (our choice)")
    batch_warmup_samples: int = _f(0, "batch-size warmup: grow the batch linearly over this many samples (0: off)")
    batch_warmup_start: int = _f(8, "batch size at the start of batch-size warmup")
    scale: float = _f(20.0, "dpr: similarity scale of (C)MNRL = 1/temperature (sentence-transformers default)")
    teacher: str | None = _f(None, "colbert distillation: a dense model (alias/folder) whose cosine scores are the targets")
    teacher_scale: float = _f(1.0, "teacher cosine is multiplied by this before PyLate's softmax (sharper targets when larger)")
    n_ways: int = _f(16, "colbert distillation: documents per query (1 positive + n_ways-1 mined)")
    save_steps: int = _f(200, "checkpoint every N steps (and at the end)")
    save_total_limit: int = _f(2, "checkpoints kept")
    logging_steps: int = _f(10, "log the loss every N steps")
    resume: bool = _f(False, "continue from the last checkpoint in OUTPUT/checkpoints")
    padded: bool = _f(False, "keep transformers' padded ModernBERT (default: a ModernBERT backbone trains unpadded via encoders/modernbert_st.py)")
    eval_data: str | None = _f(None, "after training, evaluate on these BEIR datasets (comma list, split test) with evaluate.py's runner")
    cache_dir: str | None = _f(None, "mined-negative cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)")
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu)")


LOSSES = {"dpr": ("mnrl", "cmnrl"), "colbert": ("contrastive", "cached-contrastive", "distillation")}


def resolve_loss(cfg: TrainConfig) -> str:
    """The loss name ``auto`` stands for, or the named one after checking it fits the encoder."""
    if cfg.encoder not in LOSSES:
        raise ValueError(f"unknown encoder {cfg.encoder!r}; choose from {', '.join(LOSSES)}")
    cached = cfg.mini_batch_size < cfg.batch_size
    if cfg.loss == "auto":
        if cfg.encoder == "dpr":
            return "cmnrl" if cached else "mnrl"
        return "distillation" if cfg.teacher else ("cached-contrastive" if cached else "contrastive")
    if cfg.loss not in LOSSES[cfg.encoder]:
        raise ValueError(f"loss {cfg.loss!r} does not fit encoder {cfg.encoder!r}; choose from {', '.join(LOSSES[cfg.encoder])} or auto")
    if cfg.loss == "distillation" and not cfg.teacher:
        raise ValueError("loss distillation needs --teacher (a dense model that scores the mined candidates)")
    return cfg.loss


# ---------------------------------------------------------------- models


def _device(cfg: TrainConfig) -> str:
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")


def maybe_unpad(model, cfg: TrainConfig) -> str | None:
    """Run a ModernBERT backbone through our unpadded implementation when it is available."""
    if cfg.padded:
        return None
    try:
        from encoders.modernbert_st import use_unpadded_modernbert
    except ImportError:
        return None
    backend = use_unpadded_modernbert(model)
    if backend:
        log.info("ModernBERT backbone runs unpadded (attention backend %s)", backend)
    return backend


def load_student(cfg: TrainConfig):
    """The model to train: a SentenceTransformer (dpr) or a PyLate ColBERT (colbert)."""
    from encoders.loading import load_sentence_transformer, resolve_model

    src = resolve_model(cfg.model)
    if cfg.encoder == "dpr":
        model = load_sentence_transformer(src, max_length=cfg.max_length, device=_device(cfg))
    else:
        from encoders.colbert import ColbertConfig, load_colbert

        model = load_colbert(src.path, ColbertConfig(query_length=cfg.query_length, doc_length=cfg.doc_length, device=_device(cfg)))
    return model.train(), src


def load_dense(spec: str, cfg: TrainConfig, max_length: int):
    from encoders.loading import load_sentence_transformer, resolve_model

    src = resolve_model(spec)
    return load_sentence_transformer(src, max_length=max_length, device=_device(cfg)), src


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class TrainSet:
    dataset: object  # datasets.Dataset with the loss's columns
    stats: dict  # provenance: source, checksum, pairs, mining


def _cache_dir(cfg: TrainConfig) -> Path:
    from benchmarks.datasets import cache_dir

    return Path(cfg.cache_dir) if cfg.cache_dir else cache_dir()


def _subsample(n: int, k: int, seed: int) -> list[int]:
    """``k`` of ``range(n)``, seeded, in original order (all when ``k`` is 0 or >= n)."""
    if not k or k >= n:
        return list(range(n))
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=g)[:k].tolist())


def build_train_set(cfg: TrainConfig, mining: MiningConfig, loss: str) -> TrainSet:
    """Examples -> mined negatives -> a ``datasets.Dataset`` whose columns the loss reads."""
    import datasets

    from benchmarks import datasets as registry
    from benchmarks.data import doc_text, load_beir
    from encoders import train_data as td

    src = td.parse_train_data(cfg.train_data)
    if src.kind == "msmarco":
        return _msmarco_train_set(cfg, loss)
    stats: dict = {"train_data": cfg.train_data}
    corpus = None
    if src.kind == "jsonl":
        ex = td.load_jsonl_examples(src.name)
        from benchmarks.data import file_sha256

        stats["checksum"] = file_sha256(Path(src.name))
    else:
        ds = load_beir(registry.resolve(src.name, cfg.data_dir), src.split)
        ex, corpus = td.beir_examples(ds), ds.corpus
        stats.update(checksum=ds.checksum, dataset=ds.name, split=ds.split)
    keep = _subsample(len(ex.queries), cfg.max_examples, cfg.seed)
    ex = td.Examples([ex.queries[i] for i in keep], [ex.positives[i] for i in keep], [ex.negatives[i] for i in keep],
                     [ex.qids[i] for i in keep] if ex.qids else None, [ex.pos_ids[i] for i in keep] if ex.pos_ids else None)
    stats["examples"] = len(keep)

    negatives = ex.negatives
    if corpus is not None and mining.method != "none":
        qids = sorted(set(ex.qids))
        pool = mine_pool(
            corpus, {q: ds.queries[q] for q in qids}, ds.qrels, mining,
            data_checksum=ds.checksum, cache_dir=_cache_dir(cfg),
            load_model=lambda: load_dense(mining.model or cfg.model, cfg, mining.max_length)[0],
            model_identity=_model_identity(mining.model or cfg.model) if mining.method == "dense" else None,
        )
        neg_ids = negatives_for_pairs(list(zip(ex.qids, ex.pos_ids)), pool, ds.qrels, mining, seed=cfg.seed)
        stats["mining"] = {**asdict(mining), **pool_stats(neg_ids, mining.count)}
        negatives = [[doc_text(corpus[d]) for d in ids] for ids in neg_ids]
    if loss == "distillation":
        want = cfg.n_ways - 1
    elif corpus is not None:  # mined: every example gets --mine-count negatives (0 when not mining)
        want = 0 if mining.method == "none" else mining.count
    else:  # given negatives (JSONL): as many as every example has, at most --mine-count
        want = min(mining.count, min(len(n) for n in negatives))
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


def _model_identity(spec: str) -> dict:
    from encoders.loading import resolve_model

    src = resolve_model(spec)
    return {"path": str(src.path), "revision": src.revision}


def teacher_scores(queries: list[str], docs: list[list[str]], cfg: TrainConfig) -> list[list[float]]:
    """``teacher_scale * cos(teacher(query), teacher(doc))`` for each query's documents ``(n, n_ways)``."""
    from encoders.dpr import DenseEncoder, DenseEncoderConfig

    model, _ = load_dense(cfg.teacher, cfg, cfg.max_length)
    enc = DenseEncoder(model, DenseEncoderConfig(similarity="cos"))
    uniq = sorted({d for row in docs for d in row})
    row_of = {d: i for i, d in enumerate(uniq)}
    d_emb = enc.encode_documents(uniq)  # (U, dim)
    q_emb = enc.encode_queries(queries)  # (n, dim)
    return [[float(cfg.teacher_scale * (q_emb[i] @ d_emb[row_of[d]])) for d in row] for i, row in enumerate(docs)]


def _msmarco_train_set(cfg: TrainConfig, loss: str) -> TrainSet:
    from encoders.train_data import MSMARCO, load_msmarco

    ds = load_msmarco(cfg.encoder)
    if cfg.max_examples:
        ds = ds.shuffle(seed=cfg.seed).select(range(min(cfg.max_examples, len(ds))))
    if cfg.encoder == "colbert":
        import datasets

        from pylate import utils

        repo = MSMARCO["colbert"][0]
        queries = datasets.load_dataset(repo, "queries", split="train")
        documents = datasets.load_dataset(repo, "documents", split="train")
        ds.set_transform(utils.KDProcessing(queries=queries, documents=documents, n_ways=cfg.n_ways).transform)
    return TrainSet(ds, {"train_data": "msmarco", "dataset": MSMARCO[cfg.encoder], "examples": len(ds)})


# ---------------------------------------------------------------- loss, optimiser, trainer


def make_loss(model, loss: str, cfg: TrainConfig):
    """The loss module for ``loss``; gathers negatives across devices when torch.distributed runs."""
    gather = torch.distributed.is_available() and torch.distributed.is_initialized()
    if loss in ("mnrl", "cmnrl"):
        from sentence_transformers import losses

        if loss == "mnrl":
            return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale, gather_across_devices=gather)
        return losses.CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size, gather_across_devices=gather)
    from pylate import losses as pl

    if loss == "contrastive":
        return pl.Contrastive(model, gather_across_devices=gather)
    if loss == "cached-contrastive":
        return pl.CachedContrastive(model, mini_batch_size=cfg.mini_batch_size, gather_across_devices=gather)
    return pl.Distillation(model)


def make_optimizer(named_params, cfg: TrainConfig, no_decay: set[str]) -> torch.optim.Optimizer:
    """StableAdamW (torch-optimi; AdamW + per-tensor update clipping, Wortsman et al. 2023) or AdamW."""
    groups = [
        {"params": [p for n, p in named_params if p.requires_grad and n not in no_decay], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named_params if p.requires_grad and n in no_decay], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "stableadamw":
        from optimi import StableAdamW

        # decouple_lr=False: weight_decay is multiplied by lr as in torch AdamW (same meaning of --weight-decay).
        # triton kernels only on CUDA: optimi picks them whenever triton is importable, even for CPU tensors.
        on_cuda = groups[0]["params"][0].is_cuda
        return StableAdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay, triton=None if on_cuda else False)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose stableadamw or adamw")


class WarmupNoDuplicatesBatchSampler:
    """Batches whose size follows :func:`encoders.schedule.batch_plan`, with no text twice in a batch.

    Same policy as sentence-transformers' ``NoDuplicatesBatchSampler`` (a sample clashing with
    the batch waits for a later batch), seeded by ``seed + epoch``.
    """

    def __init__(self, dataset, *, start: int, end: int, warmup_samples: int, seed: int):
        self.values = [{str(v) for k, v in row.items() if k != "dataset_name"} for row in dataset]
        self.start, self.end, self.warmup_samples, self.seed = start, end, warmup_samples, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(batch_plan(len(self.values), self.start, self.end, self.warmup_samples))

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        remaining = torch.randperm(len(self.values), generator=g).tolist()
        seen = 0
        while remaining:
            size = warmup_batch_size(seen, self.start, self.end, self.warmup_samples)
            batch, used, rest = [], set(), []
            for i in remaining:
                if len(batch) < size and self.values[i].isdisjoint(used):
                    batch.append(i)
                    used |= self.values[i]
                else:
                    rest.append(i)
            remaining = rest
            seen += len(batch)
            yield batch


def make_trainer(model, loss_module, train_set, cfg: TrainConfig, *, collator=None):
    """A SentenceTransformerTrainer with our optimiser, WSD schedule and batch sampler."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    class RetrievalTrainer(SentenceTransformerTrainer):
        def create_optimizer(self, model=None):
            if self.optimizer is None:
                no_decay = set(self.get_decay_parameter_names(self.model))
                named = list(self.model.named_parameters())
                no_decay = {n for n, _ in named if n not in no_decay}
                self.optimizer = make_optimizer(named, cfg, no_decay)
            return self.optimizer

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, wsd_factor(num_training_steps, cfg.warmup_frac, cfg.decay_frac))
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
            if cfg.batch_warmup_samples and dataset is self.train_dataset:
                return WarmupNoDuplicatesBatchSampler(dataset, start=cfg.batch_warmup_start, end=batch_size, warmup_samples=cfg.batch_warmup_samples, seed=seed)
            return super().get_batch_sampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)

    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(cfg.output) / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # Distillation rows hold lists of documents; the no-duplicate check would compare whole lists.
        batch_sampler=BatchSamplers.BATCH_SAMPLER if "scores" in train_set.column_names else BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to="none",
        use_cpu=_device(cfg) == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return RetrievalTrainer(model=model, args=args, train_dataset=train_set, loss=loss_module, data_collator=collator)


def last_checkpoint(output: str) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output) / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


# ---------------------------------------------------------------- the whole run


def train(cfg: TrainConfig, mining: MiningConfig) -> dict:
    """Train, save the final model to ``cfg.output``, write ``train_result.json``; return that record."""
    from transformers import set_seed

    from benchmarks.results import git_commit, library_versions, machine

    from benchmarks import distributed

    t0, c0 = time.time(), time.process_time()
    loss_name = resolve_loss(cfg)
    # Under torchrun, join the process group before the loss is made (it gathers negatives only
    # when torch.distributed is up). Rank 0 mines first; the others then read its mining cache.
    d = distributed.init()
    for turn in ([True, False] if d.world > 1 else [True]):
        if d.is_main == turn:
            set_seed(cfg.seed)
            train_set = build_train_set(cfg, mining, loss_name)
        d.barrier()
    t_data = time.time() - t0
    set_seed(cfg.seed)  # the student's new layers (ColBERT projection) do not depend on how mining went
    model, src = load_student(cfg)
    backend = maybe_unpad(model, cfg)
    collator = None
    if cfg.encoder == "colbert":
        from pylate import utils

        collator = utils.ColBERTCollator(model.tokenize)
    loss_module = make_loss(model, loss_name, cfg)
    trainer = make_trainer(model, loss_module, train_set.dataset, cfg, collator=collator)
    resume_from = last_checkpoint(cfg.output) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.info("--resume: no checkpoint in %s/checkpoints; starting fresh", cfg.output)
    t1, c1 = time.time(), time.process_time()
    out = trainer.train(resume_from_checkpoint=resume_from)
    train_wall, train_cpu = time.time() - t1, time.process_time() - c1
    if d.world > 1:  # free the DDP wrapper (and its reducer) while the process group is alive: freed after
        import gc  # destroy_process_group, torch 2.11's reducer can deadlock against gloo's thread on the GIL

        trainer.model_wrapped = trainer.model
        trainer.accelerator.free_memory()
        gc.collect()
    if not d.is_main:  # rank 0 saves the model and the record
        distributed.shutdown(d)
        return {"steps": trainer.state.global_step, "rank": d.rank, "time": {"train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1)}, "loss": loss_name}
    if cfg.encoder == "dpr" and cfg.save_max_length:
        model.max_seq_length = cfg.save_max_length
    model.save(cfg.output)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    record = {
        "config": asdict(cfg),
        "mining": asdict(mining),
        "loss": loss_name,
        "student": {"spec": cfg.model, "path": str(src.path), "revision": src.revision},
        "unpadded_backend": backend,
        "data": train_set.stats,
        "steps": trainer.state.global_step,
        "resumed_from": resume_from,
        "world_size": d.world,
        "global_batch_size": cfg.batch_size * d.world,
        "gather_across_devices": bool(getattr(loss_module, "gather_across_devices", False)),
        "train_loss": out.training_loss,
        "loss_log": losses,
        "time": {"data_wall_s": round(t_data, 1), "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1), "total_wall_s": round(time.time() - t0, 1), "total_cpu_s": round(time.process_time() - c0, 1)},
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "machine": machine(),
    }
    from retrieval.store import atomic_write_json

    atomic_write_json(Path(cfg.output) / "train_result.json", record)
    log.info("saved %s (%d steps, %.0f s train wall, %.0f s train CPU)", cfg.output, record["steps"], train_wall, train_cpu)
    distributed.shutdown(d)
    return record
