"""Fine-tune a DPR (sentence-transformers) or ColBERT (PyLate) retriever.

    TrainConfig + MiningConfig -> examples (BEIR qrels / JSONL / MS MARCO) -> mined negatives
    -> datasets.Dataset -> loss -> RetrievalTrainer (StableAdamW, WSD schedule, no-duplicate
    batches, optional batch-size warmup) -> checkpoints -> final model in ``output/``.

Both encoders train through ``SentenceTransformerTrainer`` (PyLate's ColBERT is a
SentenceTransformer), so checkpoints and ``--resume`` are the trainer's own (optimiser, scheduler
and RNG state), made atomic: the trainer writes ``checkpoint-N`` into ``checkpoints/.partial/``,
the marker ``checkpoint_complete.json`` (step, config, mining, data checksum) is written last, then
the folder is renamed to ``output/checkpoints/checkpoint-N``. ``--resume`` continues from the newest
marked checkpoint (a folder without the marker is a save that never finished: skipped) and refuses
one whose config differs from the current run's in any field that changes the weights.
The final model is written to a temp folder, then moved into ``output`` (``train_result.json``
last), in its native format: ``SentenceTransformer(output)`` or ``pylate.models.ColBERT(output)``
loads it, and ``evaluate.py --models output`` evaluates it.

The steps live in their own modules: ``config`` (TrainConfig, loss choice), ``trainset``
(examples, negatives, teacher scores), ``models`` (student, teacher), ``losses`` (loss,
optimiser), ``contrastive`` (false-negative-aware InfoNCE, GradCache, the id collator),
``memory`` (mini-batch from ``--memory-budget-gb``, peak RSS), ``sampler`` (batch-size warmup),
``schedule`` (WSD learning rate), ``mining``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from transformers import set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from encoders.dtype import resolve_dtype
from encoders.training.config import CACHED_LOSSES, DISTILLATION_LOSSES, RESUME_FREE, TrainConfig, check_teacher, resolve_device, resolve_loss
from encoders.training.contrastive import ID_COLUMNS, IdCollator
from encoders.training.losses import make_loss, make_optimizer
from encoders.training.memory import MemoryPlan, model_shape, peak_rss_gb, plan_memory, text_bytes
from encoders.training.mining import MiningConfig
from encoders.training.models import load_dense, load_student, maybe_unpad
from encoders.training.sampler import WarmupNoDuplicatesBatchSampler
from encoders.training.schedule import wsd_factor
from encoders.training.trainset import TrainSet, build_train_set
from retrieval import distributed
from retrieval.io import atomic_write_json
from retrieval.provenance import git_commit, library_versions, machine

log = logging.getLogger(__name__)


MARKER = "checkpoint_complete.json"  # written last into a checkpoint: the folder is complete
STAGING = ".partial"  # under OUTPUT/checkpoints: where the trainer writes checkpoint-N before the rename
CHECKPOINT = re.compile(PREFIX_CHECKPOINT_DIR + r"-(\d+)")
MARKER_DEFAULTS = {"dtype": "fp32"}  # what a marker written before the key existed means: every earlier run trained in fp32


# ---------------------------------------------------------------- atomic checkpoints


class AtomicCheckpoints:
    """Mixin for HF's ``Trainer``: ``checkpoint-N`` is written in ``STAGING``, marked complete, then renamed.

    Under torchrun every rank writes its RNG state into the staging folder; rank 0 marks and renames
    it after a barrier. ``checkpoint_identity`` (config, mining, data checksum) goes into the marker.
    """

    checkpoint_identity: dict | None = None
    _staging = False

    def _get_output_dir(self, trial):
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING) if self._staging else run_dir

    def _save_checkpoint(self, model, trial):
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:
            shutil.rmtree(run_dir / STAGING, ignore_errors=True)  # what a killed save left
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()  # every rank has written its part
        if self.args.should_save:
            commit_checkpoint(run_dir / STAGING / name, run_dir / name, {"step": self.state.global_step, **(self.checkpoint_identity or {})})
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit, best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)


def commit_checkpoint(staging: Path, final: Path, marker: dict) -> None:
    """Flush ``staging``, write ``MARKER`` into it last, and rename it to ``final`` (replacing an unmarked leftover)."""
    _fsync_tree(staging)
    atomic_write_json(staging / MARKER, marker)
    if final.exists():  # a partial checkpoint-N of a killed run, now superseded
        old = staging.with_name(staging.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(staging, final)
    staging.parent.rmdir()  # STAGING held only this checkpoint


def _fsync_tree(folder: Path) -> None:
    """fsync every file under ``folder``: a marked checkpoint survives a power cut, not only a kill."""
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def last_checkpoint(output: str) -> str | None:
    """The newest complete ``OUTPUT/checkpoints/checkpoint-N`` (holding ``MARKER``), or None; partial ones are skipped with a warning."""
    folder = Path(output) / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT.fullmatch(p.name)))
    for _, path in reversed(found):
        if (path / MARKER).is_file():
            return str(path)
        log.warning("--resume: %s has no %s (its save never finished); skipped", path, MARKER)
    return None


def run_identity(cfg: TrainConfig, mining: MiningConfig, data_checksum: str | None = None, *, dtype: str = "fp32") -> dict:
    """What a checkpoint's marker records of its run, and what ``--resume`` compares.

    ``dtype`` is the precision training really runs in (``--dtype auto`` resolved), compared on resume.
    """
    ident = {"config": asdict(cfg), "mining": asdict(mining), "dtype": dtype}
    return ident if data_checksum is None else {**ident, "data_checksum": data_checksum}


def config_differences(saved: dict, current: dict) -> list[str]:
    """``"field: saved -> current"`` for every weight-changing difference (``RESUME_FREE`` config fields may differ).

    Sections ``config`` and ``mining`` (prefixed ``mining.``) field by field; other keys of ``current``
    (``data_checksum``) as values. Sorted.

    >>> config_differences({"config": {"lr": 1e-3, "output": "a"}, "mining": {"count": 1}}, {"config": {"lr": 2e-3, "output": "b"}, "mining": {"count": 1}})
    ['lr: 0.001 -> 0.002']
    """
    diffs = []
    for section, prefix in (("config", ""), ("mining", "mining.")):
        old, new = saved.get(section, {}), current.get(section, {})
        for k in sorted(set(old) | set(new)):
            if (section != "config" or k not in RESUME_FREE) and old.get(k) != new.get(k):
                diffs.append(f"{prefix}{k}: {old.get(k)!r} -> {new.get(k)!r}")
    for k in sorted(set(current) - {"config", "mining"}):
        old = saved.get(k, MARKER_DEFAULTS.get(k))
        if old != current[k]:
            diffs.append(f"{k}: {old!r} -> {current[k]!r}")
    return sorted(diffs)


def check_resume(checkpoint: str, current: dict) -> None:
    """Raise ValueError naming the fields where ``checkpoint``'s marker differs from the current run."""
    saved = json.loads((Path(checkpoint) / MARKER).read_text())
    diffs = config_differences(saved, current)
    if diffs:
        raise ValueError(f"--resume: {checkpoint} was written by a run with other settings ({'; '.join(diffs)}); "
                         "resume with the same settings, or train into a fresh --output")


def save_final(save: Callable[[str], None], output: Path) -> None:
    """Write the final model through ``save(folder)`` into a temp folder inside ``output``, then move it in.

    ``output`` also holds ``checkpoints/`` (and ``eval/``), so it cannot be swapped as one folder: the
    old run's ``train_result.json`` (the completion record) is removed first, then each top-level
    entry of the new model is renamed into place (one atomic rename each: the weights in one step);
    :func:`train` writes the new ``train_result.json`` last. A failed ``save`` leaves ``output`` as it was.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=output))
    try:
        save(str(tmp))
        _fsync_tree(tmp)
        (output / "train_result.json").unlink(missing_ok=True)
        for entry in sorted(tmp.iterdir()):
            target = output / entry.name
            if target.exists() and (target.is_dir() or entry.is_dir()):  # os.replace cannot overwrite a folder
                os.replace(target, tmp / f".old-{entry.name}")
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- trainer


def make_trainer(model, loss_module, train_set, cfg: TrainConfig, *, collator=None, identity: dict | None = None, bf16: bool = False, evaluator=None):
    """A SentenceTransformerTrainer with our optimiser, WSD schedule, batch sampler and atomic checkpoints marked with ``identity``; ``bf16``: autocast mixed precision.

    ``evaluator`` (a sentence-transformers evaluator, e.g. ``modernretrieval.evaluator.RetrievalEvaluator``) runs every
    ``cfg.eval_every`` steps; it reads the weights and changes none of them.
    """
    from sentence_transformers import SentenceTransformerTrainer  # lazy: sentence-transformers is slow to import; only training needs it

    class RetrievalTrainer(AtomicCheckpoints, SentenceTransformerTrainer):
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
                return WarmupNoDuplicatesBatchSampler(dataset, start=cfg.batch_warmup_start, end=batch_size, warmup_samples=cfg.batch_warmup_samples, seed=seed,
                                                      exclude=valid_label_columns or ())
            return super().get_batch_sampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)

    args = _training_args(cfg, distillation="scores" in train_set.column_names, bf16=bf16, evaluate=evaluator is not None and cfg.eval_every > 0)
    trainer = RetrievalTrainer(model=model, args=args, train_dataset=train_set, loss=loss_module, data_collator=collator,
                               evaluator=evaluator if cfg.eval_every > 0 else None)
    trainer.checkpoint_identity = identity
    return trainer


def _training_args(cfg: TrainConfig, *, distillation: bool, bf16: bool = False, evaluate: bool = False):
    """The trainer's arguments: steps, batch, seeds, checkpointing and logging from ``cfg``.

    ``bf16``: mixed precision through accelerate's autocast (``torch.autocast(cpu|cuda, bfloat16)``);
    the weights and the optimiser state stay fp32.
    """
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
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **({"eval_strategy": "steps", "eval_steps": cfg.eval_every} if evaluate else {}),
    )


# ---------------------------------------------------------------- the whole run


def train(cfg: TrainConfig, mining: MiningConfig, evaluator=None) -> dict:
    """Train, save the final model to ``cfg.output``, write ``train_result.json``; return that record.

    On a non-zero torchrun rank the record is short (steps, rank, time, loss): rank 0 saves. ``evaluator``: run every
    ``cfg.eval_every`` steps (the CLI builds one from ``--eval-data``); its logged metrics go into the record (``eval_log``).
    """
    t0, c0 = time.time(), time.process_time()
    loss_name = resolve_loss(cfg)
    check_teacher(cfg, loss_name)
    precision = resolve_dtype(cfg.dtype, resolve_device(cfg), Path(cfg.cache_dir) if cfg.cache_dir else None)
    resume_from = _resume_from(cfg, run_identity(cfg, mining, dtype=precision.dtype))  # a changed config fails now, before mining
    # Under torchrun, join the process group before the loss is made (it gathers negatives only
    # when torch.distributed is up). Rank 0 mines first; the others then read its mining cache.
    d = distributed.init()
    precision = d.share(precision)  # every rank trains in rank 0's choice (a CPU probe may differ by rank)
    train_set = _build_main_first(cfg, mining, loss_name, d)
    t_data = time.time() - t0
    identity = run_identity(cfg, mining, train_set.stats.get("checksum"), dtype=precision.dtype)
    if resume_from:
        check_resume(resume_from, identity)  # the same data, too
    set_seed(cfg.seed)  # the student's new layers (ColBERT projection) do not depend on how mining went
    model, src = load_student(cfg)
    backend = maybe_unpad(model, cfg)
    plan = memory_plan(model, cfg, train_set.dataset, loss_name)
    log.info("%s", plan.describe())
    loss_name = resolve_loss(cfg, cached=plan.cached)
    plan = applied_plan(plan, loss_name, cfg)
    # What the plan resolved changes the weights (GradCache chunks draw dropout per mini-batch): --resume compares it.
    identity = {**identity, "batching": {"loss": loss_name, "mini_batch_size": plan.mini_batch_size}}
    if resume_from:
        check_resume(resume_from, identity)
    guide = load_dense(cfg.guide, cfg, cfg.max_length, flag="--guide")[0] if cfg.guide and cfg.encoder == "dpr" and loss_name not in DISTILLATION_LOSSES else None
    collator = _collator(model, cfg, train_set.dataset)
    loss_module = make_loss(model, loss_name, cfg, mini_batch_size=plan.mini_batch_size, guide=guide)
    trainer = make_trainer(model, loss_module, train_set.dataset, cfg, collator=collator, identity=identity, bf16=precision.dtype == "bf16", evaluator=evaluator)
    t1, c1 = time.time(), time.process_time()
    out = _train(trainer, resume_from)
    train_wall, train_cpu = time.time() - t1, time.process_time() - c1
    peak = peak_rss_gb()
    if getattr(loss_module, "masked_total", None) is not None:
        log.info("in-batch false negatives masked over the run: %d (query, document) logits", loss_module.masked_total)
    log.info("peak RSS %.2f GB (this process %.2f GB, children %.2f GB)", peak["peak_rss_gb"], peak["self_gb"], peak["children_gb"])
    if d.world > 1:
        _free_ddp(trainer)
    if not d.is_main:  # rank 0 saves the model and the record
        distributed.shutdown(d)
        return {"steps": trainer.state.global_step, "rank": d.rank, "time": {"train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1)}, "loss": loss_name}
    if cfg.encoder == "dpr" and cfg.save_max_length:
        model.max_seq_length = cfg.save_max_length
    save_final(model.save, Path(cfg.output))
    record = {
        "config": asdict(cfg),
        "mining": asdict(mining),
        "loss": loss_name,
        "dtype": precision.record(),
        "student": {"spec": cfg.model, "path": str(src.path), "revision": src.revision},
        "unpadded_backend": backend,
        "data": train_set.stats,
        "steps": trainer.state.global_step,
        "resumed_from": resume_from,
        "world_size": d.world,
        "global_batch_size": cfg.batch_size * d.world,
        "gather_across_devices": bool(getattr(loss_module, "gather_across_devices", False)),
        "false_negative_mask": bool(getattr(loss_module, "mask_false_negatives", False)) and "false_negative_mask" in train_set.stats,
        "guide": cfg.guide,
        "in_batch_negatives_masked": getattr(loss_module, "masked_total", None),  # (query, document) logits left out over the run
        "memory": {**plan.record(), **peak},
        "peak_rss_gb": peak["peak_rss_gb"],
        "train_loss": out.training_loss if out is not None else None,  # None: resumed at the last step, nothing trained here
        "loss_log": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "eval_log": [{k: v for k, v in h.items() if k.startswith("eval_") or k in ("step", "epoch")} for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)],
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


def _collator(model, cfg: TrainConfig, dataset):
    """PyLate's ColBERT collator for colbert, sentence-transformers' for dpr; wrapped in
    :class:`~encoders.training.contrastive.IdCollator` when the train set carries the false-negative ids."""
    if cfg.encoder == "colbert":
        from pylate import utils  # lazy: pylate pulls fast-plaid; only ColBERT needs it

        inner = utils.ColBERTCollator(model.tokenize)
    else:
        from sentence_transformers.data_collator import SentenceTransformerDataCollator  # lazy: sentence-transformers is slow to import; only training needs it

        tok = model.tokenizer
        inner = SentenceTransformerDataCollator(tokenize_fn=model.tokenize, all_special_ids=set(getattr(tok, "all_special_ids", ())))
    return IdCollator(inner) if set(ID_COLUMNS) <= set(dataset.column_names) else inner


def memory_plan(model, cfg: TrainConfig, dataset, loss: str) -> MemoryPlan:
    """How each batch goes through ``model`` within ``--memory-budget-gb`` (encoders/training/memory.py).

    Texts per example: the train set's text columns (distillation: the query and its ``n_ways``
    documents). Texts at full length: ``--max-length`` (dpr) or ``--doc-length`` (colbert, whose
    token-level MaxSim scores also count, per query row).
    """
    shape = model_shape(model)
    texts = 1 + cfg.n_ways if loss in DISTILLATION_LOSSES else len([c for c in dataset.column_names if c not in ID_COLUMNS])
    seq = cfg.doc_length if cfg.encoder == "colbert" else cfg.max_length
    score = 3 * 4 * cfg.batch_size * (texts - 1) * cfg.query_length * cfg.doc_length if cfg.encoder == "colbert" else 0  # fp32 sim, masked copy, grad
    plan = plan_memory(budget_gb=cfg.memory_budget_gb, batch_size=cfg.batch_size, texts_per_example=texts, params=shape["params"],
                       text_bytes_=text_bytes(layers=shape["layers"], hidden=shape["hidden"], heads=shape["heads"], seq=seq),
                       mini_batch_size=cfg.mini_batch_size, score_bytes_per_query=score)
    return plan


def applied_plan(plan: MemoryPlan, loss: str, cfg: TrainConfig) -> MemoryPlan:
    """The plan ``loss`` really follows: an uncached loss (an explicit mnrl, contrastive or distillation)
    runs the whole batch in one forward whatever the budget asked, so it is warned about and recorded as such
    (not as the GradCache mini-batch it does not use)."""
    if not plan.cached or loss in CACHED_LOSSES:
        return plan
    hint = "use --loss auto (GradCache) or lower --batch-size"
    log.warning("--loss %s has no GradCache: the whole batch (~%.1f GB estimated) goes through at once, above --memory-budget-gb %g; %s",
                loss, plan.whole_batch_gb, cfg.memory_budget_gb, hint)
    return replace(plan, mini_batch_size=cfg.batch_size, cached=False, source=f"--loss {loss}")


def _train(trainer, resume_from: str | None):
    """``trainer.train``, except for a checkpoint already at its run's last step: its weights are loaded, nothing is trained.

    transformers checks ``max_steps`` only after a step, so resuming a finished run from a mid-epoch
    checkpoint would take one step more than the uninterrupted run did.
    """
    from transformers import TrainerState  # lazy: transformers' trainer is slow to import; only training needs it

    if resume_from and (Path(resume_from) / "trainer_state.json").is_file():
        state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
        if state.max_steps and state.global_step >= state.max_steps:
            log.info("--resume: %s is the run's last step (%d); loading its weights, nothing left to train", resume_from, state.global_step)
            trainer._load_from_checkpoint(resume_from)
            trainer.state = state
            return None
    return trainer.train(resume_from_checkpoint=resume_from)


def _resume_from(cfg: TrainConfig, identity: dict) -> str | None:
    """The complete checkpoint ``--resume`` continues from, its config checked (None: fresh start, logged when --resume found nothing)."""
    resume_from = last_checkpoint(cfg.output) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.info("--resume: no complete checkpoint in %s/checkpoints; starting fresh", cfg.output)
    if resume_from:
        check_resume(resume_from, identity)
    return resume_from


def _free_ddp(trainer) -> None:
    """Free the DDP wrapper (and its reducer) while the process group is alive: freed after
    destroy_process_group, torch 2.11's reducer can deadlock against gloo's thread on the GIL."""
    trainer.model_wrapped = trainer.model
    trainer.accelerator.free_memory()
    gc.collect()
