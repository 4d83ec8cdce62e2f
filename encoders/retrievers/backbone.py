"""What the neural retrievers share: the torch device, and ModernBERT on our unpadded backbone."""

from __future__ import annotations

import logging
import os

import torch

from encoders.modernbert_st import use_unpadded_modernbert
from encoders.retrievers.config import ModelConfig

log = logging.getLogger(__name__)


def default_device(device: str | None) -> str:
    """``device`` if given, else this process's GPU (``LOCAL_RANK`` under torchrun) or the CPU."""
    if device:
        return device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def swap_backbone(st_model, cfg: ModelConfig) -> str:
    """Run ModernBERT checkpoints on our unpadded backbone (same weights); returns what runs, for provenance."""
    if not cfg.unpadded:
        return "transformers (padded, --no-unpadded)"
    backend = use_unpadded_modernbert(st_model, backend=cfg.attn_backend, compile=cfg.compile)
    if backend is None:
        return "transformers"
    log.info("ModernBERT: unpadded backbone, attention backend %s%s", backend, " (compiled MLPs)" if cfg.compile else "")
    return f"unpadded ModernBERT ({backend})"


def variant_suffix(model: ModelConfig, encoding, index) -> str:
    """Non-default settings that change scores, for the display name only, e.g. ``[bf16, hnsw]``.

    The name is for people; keys come from the run spec's hash, never from this string.
    """
    parts = []
    if encoding.dtype != "fp32":
        parts.append(encoding.dtype)
    if index.index != "flat":
        parts.append(index.index)
    if model.pooling:
        parts.append(f"{model.pooling}-pool")
    if encoding.max_length:
        parts.append(f"len{encoding.max_length}")
    if model.similarity != "cos":
        parts.append(model.similarity)
    if model.query_prefix or model.doc_prefix:
        parts.append("prefixed")
    if encoding.doc_handling != "truncate":
        parts.append(encoding.doc_handling)
    return f" [{', '.join(parts)}]" if parts else ""
