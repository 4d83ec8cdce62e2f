"""What a training run is: ``TrainConfig`` (one field per ``train.py`` flag) and the choices derived from it.

``resolve_loss`` turns ``--loss auto`` into a loss name that fits the encoder; ``resolve_device``
turns ``--device`` (unset) into cuda or cpu.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from retrieval.flags import flag_field as _f
from retrieval.fusion import parse_fusion


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = _f("dpr", "dpr (single vector, sentence-transformers) | colbert (multi-vector, PyLate)")
    model: str = _f("minilm", "student: an alias (minilm), a local folder (ST, PyLate or plain Hugging Face)")
    train_data: str = _f("scifact", "BEIR name or folder [:split] (default split train) | FILE.jsonl | msmarco | a save_to_disk folder")
    data_dir: str | None = _f(None, "folder holding BEIR datasets by name (as evaluate.py)")
    output: str = _f("runs/train", "final model goes here; checkpoints in OUTPUT/checkpoints")
    loss: str = _f("auto", "dpr: mnrl | cmnrl; colbert: contrastive | cached-contrastive | distillation | cached-distillation; auto: cached (GradCache) when the batch does not fit --memory-budget-gb or --mini-batch-size < --batch-size, distillation when --teacher is set")
    lr: float = _f(2e-5, "peak learning rate")
    epochs: float = _f(1.0, "passes over the training examples")
    max_steps: int = _f(-1, "stop after this many optimiser steps (overrides --epochs when > 0)")
    batch_size: int = _f(32, "examples per step (in-batch negatives come from the whole batch)")
    mini_batch_size: int | None = _f(None, "GradCache chunk (texts per forward) for cached losses: memory scales with this, not with --batch-size; unset: sized to --memory-budget-gb")
    memory_budget_gb: float = _f(4.0, "peak memory the run aims at: sizes the GradCache mini-batch (encoders/training/memory.py: documented estimate; 4 GB: MiniLM's defaults peak ~3.9 GB RSS)")
    mask_false_negatives: bool = _f(True, "in-batch loss: leave out (-inf logit) every in-batch document the qrels mark relevant to the query, not only its own positive (BEIR, JSONL: same query text)")
    guide: str | None = _f(None, "GISTEmbed guide (a dense model alias/folder): drops mined negatives it scores above the positive, and for dpr also in-batch ones (costs a second model)")
    max_pairs_per_query: int = _f(0, "keep at most this many examples per query (seeded pick; 0: all): stops queries with hundreds of weak qrels (NFCorpus) from dominating; applied before --max-examples (a save_to_disk folder: after, it is subsampled while read)")
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
    teacher: str | None = _f(None, "colbert distillation: bm25, a dense model (alias/folder: cosine), a PyLate ColBERT folder (MaxSim), or several fused: bm25+minilm, bm25*0.3+minilm*0.7 (encoders/training/teachers.py)")
    teacher_scale: float = _f(1.0, "teacher score is multiplied by this before --teacher-norm and PyLate's softmax (sharper targets when larger; no effect after minmax/zscore)")
    teacher_fusion: Literal["rrf", "combsum", "combmnz", "wsum"] | None = _f(None, "fused teacher: how the teachers' per-query candidate scores combine (default: combsum; wsum for a weighted --teacher)")
    teacher_fusion_norm: Literal["minmax", "zscore", "max", "none"] | None = _f(None, "fused teacher: per-query normalisation of each teacher before fusing (default: the method's own: minmax, none for rrf)")
    teacher_norm: Literal["none", "minmax", "zscore"] = _f("none", "per-query normalisation of the (fused) teacher scores over their n-way candidates; targets = softmax(norm(scores) / --teacher-temperature)")
    teacher_temperature: float = _f(1.0, "distillation targets = softmax(norm(teacher scores) / T): T < 1 sharper, T > 1 flatter")
    student_minmax: bool = _f(True, "distillation: min-max normalise the student's scores per query before its softmax (PyLate's default; pair with --teacher-norm minmax)")
    distill_in_batch: float = _f(0.0, "colbert distillation: add this x the in-batch contrastive loss (ColBERTv2: each query's positive against every candidate in the batch, qrels false negatives masked) to the KL; 0: PyLate's KL alone")
    n_ways: int = _f(16, "colbert distillation: documents per query (1 positive + n_ways-1 mined)")
    save_steps: int = _f(200, "checkpoint every N steps (and at the end)")
    save_total_limit: int = _f(2, "checkpoints kept")
    logging_steps: int = _f(10, "log the loss every N steps")
    resume: bool = _f(False, "continue from the last complete checkpoint in OUTPUT/checkpoints (refused when a setting that changes the weights differs)")
    padded: bool = _f(False, "keep transformers' padded ModernBERT (default: a ModernBERT backbone trains unpadded via encoders/modernbert_st.py)")
    eval_data: str | None = _f(None, "after training, evaluate on these BEIR datasets (comma list, split test) with evaluate.py's runner")
    eval_every: int = _f(0, "during training, every N steps: nDCG@10 and recall@100 on a slice of the first --eval-data dataset (50 queries, their judged documents and 500 others), through the evaluation pipeline, logged (0: off)")
    cache_dir: str | None = _f(None, "mined-negative cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)")
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu)")
    dtype: Literal["fp32", "bf16", "auto"] = _f("fp32", "training precision: fp32, bf16 (autocast mixed precision, fp32 master weights) or auto (bf16 where the device runs it natively: a bf16 GPU, or a CPU whose measured bf16 GEMM beats fp32 by 1.3x)")


# Fields --resume may change: they move files, set logging, checkpoint cadence or the evaluation after
# training, not the trained weights. ``device``: a killed run may resume on other hardware (rounding only).
# ``dtype``: what it resolves to is compared instead (run_identity's "dtype"), so auto -> fp32 resumes an fp32 run.
RESUME_FREE = frozenset({"output", "resume", "data_dir", "cache_dir", "logging_steps", "save_steps", "save_total_limit", "eval_data", "eval_every", "device", "dtype"})

LOSSES = {"dpr": ("mnrl", "cmnrl"), "colbert": ("contrastive", "cached-contrastive", "distillation", "cached-distillation")}
CACHED_LOSSES = frozenset({"cmnrl", "cached-contrastive", "cached-distillation"})  # GradCache variants: the only losses a mini-batch applies to
DISTILLATION_LOSSES = frozenset({"distillation", "cached-distillation"})  # train on teacher scores (--teacher), not on positives


def resolve_loss(cfg: TrainConfig, *, cached: bool = False) -> str:
    """The loss name ``auto`` stands for, or the named one after checking it fits the encoder.

    ``cached``: the memory plan wants GradCache (encoders/training/memory.py); an explicit
    ``--mini-batch-size`` below ``--batch-size`` wants it too.
    """
    if cfg.encoder not in LOSSES:
        raise ValueError(f"unknown encoder {cfg.encoder!r}; choose from {', '.join(LOSSES)}")
    cached = cached or (cfg.mini_batch_size is not None and cfg.mini_batch_size < cfg.batch_size)
    if cfg.loss == "auto":
        if cfg.encoder == "dpr":
            return "cmnrl" if cached else "mnrl"
        if cfg.teacher:
            return "cached-distillation" if cached else "distillation"
        return "cached-contrastive" if cached else "contrastive"
    if cfg.loss not in LOSSES[cfg.encoder]:
        raise ValueError(f"loss {cfg.loss!r} does not fit encoder {cfg.encoder!r}; choose from {', '.join(LOSSES[cfg.encoder])} or auto")
    if cfg.loss in DISTILLATION_LOSSES and not cfg.teacher:
        raise ValueError(f"loss {cfg.loss} needs --teacher (bm25, a dense or ColBERT model, or a fusion such as bm25+minilm, that scores the mined candidates)")
    return cfg.loss


def check_teacher(cfg: TrainConfig, loss: str | None = None) -> None:
    """Fail before mining on a malformed ``--teacher`` fusion, a temperature that is not > 0, or a
    ``--distill-in-batch`` weight that is negative or set for a loss that is not distillation (``loss``: the resolved loss)."""
    if cfg.teacher:
        parse_fusion(cfg.teacher)  # ValueError naming the bad part
    if not cfg.teacher_temperature > 0:
        raise ValueError(f"--teacher-temperature must be > 0, got {cfg.teacher_temperature}")
    if not (cfg.distill_in_batch >= 0 and math.isfinite(cfg.distill_in_batch)):
        raise ValueError(f"--distill-in-batch must be a finite number >= 0, got {cfg.distill_in_batch}")
    if cfg.distill_in_batch and loss is not None and loss not in DISTILLATION_LOSSES:
        raise ValueError(f"--distill-in-batch {cfg.distill_in_batch:g} weighs an in-batch term added to distillation, but the loss is {loss} "
                         "(the contrastive losses are in-batch already): pass --teacher, or drop --distill-in-batch")


def resolve_device(cfg: TrainConfig) -> str:
    """``cfg.device``, else cuda when available, else cpu."""
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
