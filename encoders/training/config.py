"""What a training run is: ``TrainConfig`` (one field per ``train.py`` flag) and the choices derived from it.

``resolve_loss`` turns ``--loss auto`` into a loss name that fits the encoder; ``resolve_device``
turns ``--device`` (unset) into cuda or cpu.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from retrieval.flags import flag_field as _f


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
    resume: bool = _f(False, "continue from the last complete checkpoint in OUTPUT/checkpoints (refused when a setting that changes the weights differs)")
    padded: bool = _f(False, "keep transformers' padded ModernBERT (default: a ModernBERT backbone trains unpadded via encoders/modernbert_st.py)")
    eval_data: str | None = _f(None, "after training, evaluate on these BEIR datasets (comma list, split test) with evaluate.py's runner")
    cache_dir: str | None = _f(None, "mined-negative cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)")
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu)")


# Fields --resume may change: they move files, set logging, checkpoint cadence or the evaluation after
# training, not the trained weights. ``device``: a killed run may resume on other hardware (rounding only).
RESUME_FREE = frozenset({"output", "resume", "data_dir", "cache_dir", "logging_steps", "save_steps", "save_total_limit", "eval_data", "device"})

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


def resolve_device(cfg: TrainConfig) -> str:
    """``cfg.device``, else cuda when available, else cpu."""
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
