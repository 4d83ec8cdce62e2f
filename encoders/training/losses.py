"""The loss module and the optimiser of a training run.

Losses (ModernBERT paper, arXiv 2412.13663, appendix on retrieval fine-tuning):
    dpr:     mnrl (InfoNCE with in-batch + hard negatives, van den Oord et al. 2018),
             cmnrl (the same with GradCache, Gao et al. 2021: batch >> memory)
    colbert: contrastive, cached-contrastive, distillation (KL to teacher scores, PyLate's maths),
             cached-distillation (the same with GradCache: encoders/training/distillation.py); both
             optionally plus ColBERTv2's in-batch negatives (--distill-in-batch)
The contrastive four are encoders/training/contrastive.py's: sentence-transformers' and PyLate's
maths (equal to them on a batch without ids, tested) with in-batch false negatives masked.
Optimiser: StableAdamW (torch-optimi; AdamW + per-tensor update clipping, Wortsman et al. 2023) or AdamW.
"""

from __future__ import annotations

import torch

from encoders.training.config import CACHED_LOSSES, DISTILLATION_LOSSES, TrainConfig
from encoders.training.contrastive import ColbertContrastive, DprContrastive
from encoders.training.distillation import ColbertDistillation


def make_loss(model, loss: str, cfg: TrainConfig, *, mini_batch_size: int | None = None, guide=None):
    """The loss module for ``loss``; gathers negatives across devices when torch.distributed runs.

    ``mini_batch_size``: the GradCache chunk of the cached losses (the memory plan's, or
    ``--mini-batch-size``); ``guide``: a loaded guide model (dpr: GISTEmbed's in-batch filter).
    """
    gather = torch.distributed.is_available() and torch.distributed.is_initialized()
    common = {"mask_false_negatives": cfg.mask_false_negatives, "gather_across_devices": gather}
    cached = loss in CACHED_LOSSES
    if cached and not mini_batch_size:
        raise ValueError(f"loss {loss} needs a mini-batch size (--mini-batch-size or --memory-budget-gb)")
    mini = mini_batch_size if cached else None
    if loss in ("mnrl", "cmnrl"):
        return DprContrastive(model, scale=cfg.scale, guide=guide, mini_batch_size=mini, **common)
    if loss in ("contrastive", "cached-contrastive"):
        return ColbertContrastive(model, mini_batch_size=mini, **common)
    if loss in DISTILLATION_LOSSES:  # labels: teachers.teacher_scores' logits
        return ColbertDistillation(model, normalize_scores=cfg.student_minmax, mini_batch_size=mini, inbatch_weight=cfg.distill_in_batch,
                                   mask_false_negatives=cfg.mask_false_negatives)
    raise ValueError(f"unknown loss {loss!r}")


def make_optimizer(named_params, cfg: TrainConfig, no_decay: set[str]) -> torch.optim.Optimizer:
    """StableAdamW (torch-optimi; AdamW + per-tensor update clipping, Wortsman et al. 2023) or AdamW."""
    groups = [
        {"params": [p for n, p in named_params if p.requires_grad and n not in no_decay], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named_params if p.requires_grad and n in no_decay], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "stableadamw":
        from optimi import StableAdamW  # lazy: torch-optimi is needed only for --optimizer stableadamw

        # decouple_lr=False: weight_decay is multiplied by lr as in torch AdamW (same meaning of --weight-decay).
        # triton kernels only on CUDA: optimi picks them whenever triton is importable, even for CPU tensors.
        on_cuda = groups[0]["params"][0].is_cuda
        return StableAdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay, triton=None if on_cuda else False)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose stableadamw or adamw")
