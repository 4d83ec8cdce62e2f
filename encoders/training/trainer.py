"""Fine-tune a DPR (sentence-transformers) or ColBERT (PyLate) retriever.

    TrainConfig + MiningConfig -> examples (BEIR qrels / JSONL / MS MARCO) -> mined negatives
    -> datasets.Dataset -> loss -> RetrievalTrainer (StableAdamW, WSD schedule, no-duplicate
    batches, optional batch-size warmup) -> checkpoints -> final model in ``output/``.

Both encoders train through ``SentenceTransformerTrainer`` (PyLate's ColBERT is a
SentenceTransformer), so checkpointing and ``--resume`` are the trainer's own: a killed run
continues from ``output/checkpoints/checkpoint-N`` with optimiser, scheduler and RNG state.
The final model is saved in its native format: ``SentenceTransformer(output)`` or
``pylate.models.ColBERT(output)`` loads it, and ``evaluate.py --models output`` evaluates it.

The steps live in their own modules: ``config`` (TrainConfig, loss choice), ``trainset``
(examples, negatives, teacher scores), ``models`` (student, teacher), ``losses`` (loss,
optimiser), ``sampler`` (batch-size warmup), ``schedule`` (WSD learning rate), ``mining``.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from encoders.training.config import TrainConfig, resolve_device, resolve_loss
from encoders.training.losses import make_loss, make_optimizer
from encoders.training.mining import MiningConfig
from encoders.training.models import load_student, maybe_unpad
from encoders.training.sampler import WarmupNoDuplicatesBatchSampler
from encoders.training.schedule import wsd_factor
from encoders.training.trainset import TrainSet, build_train_set
from retrieval import distributed
from retrieval.io import atomic_write_json
from retrieval.provenance import git_commit, library_versions, machine

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- trainer


def make_trainer(model, loss_module, train_set, cfg: TrainConfig, *, collator=None):
    """A SentenceTransformerTrainer with our optimiser, WSD schedule and batch sampler."""
    from sentence_transformers import SentenceTransformerTrainer  # lazy: sentence-transformers is slow to import; only training needs it

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

    args = _training_args(cfg, distillation="scores" in train_set.column_names)
    return RetrievalTrainer(model=model, args=args, train_dataset=train_set, loss=loss_module, data_collator=collator)


def _training_args(cfg: TrainConfig, *, distillation: bool):
    """The trainer's arguments: steps, batch, seeds, checkpointing and logging from ``cfg``."""
    from sentence_transformers import SentenceTransformerTrainingArguments  # lazy: sentence-transformers is slow to import; only training needs it
    from sentence_transformers.training_args import BatchSamplers  # lazy: sentence-transformers is slow to import; only training needs it

    return SentenceTransformerTrainingArguments(
        output_dir=str(Path(cfg.output) / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # Distillation rows hold lists of documents; the no-duplicate check would compare whole lists.
        batch_sampler=BatchSamplers.BATCH_SAMPLER if distillation else BatchSamplers.NO_DUPLICATES,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to="none",
        use_cpu=resolve_device(cfg) == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def last_checkpoint(output: str) -> str | None:
    """The newest ``OUTPUT/checkpoints/checkpoint-N``, or None."""
    folder = Path(output) / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


# ---------------------------------------------------------------- the whole run


def train(cfg: TrainConfig, mining: MiningConfig) -> dict:
    """Train, save the final model to ``cfg.output``, write ``train_result.json``; return that record.

    On a non-zero torchrun rank the record is short (steps, rank, time, loss): rank 0 saves.
    """
    t0, c0 = time.time(), time.process_time()
    loss_name = resolve_loss(cfg)
    # Under torchrun, join the process group before the loss is made (it gathers negatives only
    # when torch.distributed is up). Rank 0 mines first; the others then read its mining cache.
    d = distributed.init()
    train_set = _build_main_first(cfg, mining, loss_name, d)
    t_data = time.time() - t0
    set_seed(cfg.seed)  # the student's new layers (ColBERT projection) do not depend on how mining went
    model, src = load_student(cfg)
    backend = maybe_unpad(model, cfg)
    collator = _collator(model, cfg)
    loss_module = make_loss(model, loss_name, cfg)
    trainer = make_trainer(model, loss_module, train_set.dataset, cfg, collator=collator)
    resume_from = _resume_from(cfg)
    t1, c1 = time.time(), time.process_time()
    out = trainer.train(resume_from_checkpoint=resume_from)
    train_wall, train_cpu = time.time() - t1, time.process_time() - c1
    if d.world > 1:
        _free_ddp(trainer)
    if not d.is_main:  # rank 0 saves the model and the record
        distributed.shutdown(d)
        return {"steps": trainer.state.global_step, "rank": d.rank, "time": {"train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1)}, "loss": loss_name}
    if cfg.encoder == "dpr" and cfg.save_max_length:
        model.max_seq_length = cfg.save_max_length
    model.save(cfg.output)
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
        "loss_log": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "time": {"data_wall_s": round(t_data, 1), "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1), "total_wall_s": round(time.time() - t0, 1), "total_cpu_s": round(time.process_time() - c0, 1)},
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "machine": machine(),
    }
    atomic_write_json(Path(cfg.output) / "train_result.json", record)
    log.info("saved %s (%d steps, %.0f s train wall, %.0f s train CPU)", cfg.output, record["steps"], train_wall, train_cpu)
    distributed.shutdown(d)
    return record


def _build_main_first(cfg: TrainConfig, mining: MiningConfig, loss: str, d: distributed.Dist) -> TrainSet:
    """The train set, built on rank 0 first, then on the other ranks (which read rank 0's mining cache)."""
    for turn in ([True, False] if d.world > 1 else [True]):
        if d.is_main == turn:
            set_seed(cfg.seed)
            train_set = build_train_set(cfg, mining, loss)
        d.barrier()
    return train_set


def _collator(model, cfg: TrainConfig):
    """PyLate's ColBERT collator for colbert; None (the trainer's default) for dpr."""
    if cfg.encoder != "colbert":
        return None
    from pylate import utils  # lazy: pylate pulls fast-plaid; only ColBERT needs it

    return utils.ColBERTCollator(model.tokenize)


def _resume_from(cfg: TrainConfig) -> str | None:
    """The checkpoint ``--resume`` continues from (None: fresh start, logged when --resume found nothing)."""
    resume_from = last_checkpoint(cfg.output) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.info("--resume: no checkpoint in %s/checkpoints; starting fresh", cfg.output)
    return resume_from


def _free_ddp(trainer) -> None:
    """Free the DDP wrapper (and its reducer) while the process group is alive: freed after
    destroy_process_group, torch 2.11's reducer can deadlock against gloo's thread on the GIL."""
    trainer.model_wrapped = trainer.model
    trainer.accelerator.free_memory()
    gc.collect()
