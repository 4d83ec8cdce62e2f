"""Load the models a training run uses: the student (DPR or ColBERT), dense teachers and mining models.

A ModernBERT backbone is swapped for our unpadded implementation unless ``--padded`` is given; an
error in that swap (an ImportError of our own module included) propagates, never a silent padded run.
A ColBERT student's new projection is seeded with ``--seed``.
"""

from __future__ import annotations

import logging

from encoders.colbert import ColbertConfig, is_pylate_folder, load_colbert
from encoders.loading import load_sentence_transformer, resolve_model
from encoders.modernbert_st import use_unpadded_modernbert
from encoders.training.config import TrainConfig, resolve_device

log = logging.getLogger(__name__)


def maybe_unpad(model, cfg: TrainConfig) -> str | None:
    """Run a ModernBERT backbone through our unpadded implementation; the attention backend, or None.

    None only for ``--padded`` or a backbone that is not ModernBERT; any error propagates (no fallback).
    """
    if cfg.padded:
        return None
    backend = use_unpadded_modernbert(model)
    if backend:
        log.info("ModernBERT backbone runs unpadded (attention backend %s)", backend)
    return backend


def load_student(cfg: TrainConfig):
    """The model to train: a SentenceTransformer (dpr) or a PyLate ColBERT (colbert)."""
    src = resolve_model(cfg.model)
    if cfg.encoder == "dpr":
        model = load_sentence_transformer(src, max_length=cfg.max_length, device=resolve_device(cfg))
    else:
        ccfg = ColbertConfig(query_length=cfg.query_length, doc_length=cfg.doc_length, device=resolve_device(cfg), projection_seed=cfg.seed)
        model = load_colbert(src.path, ccfg)  # a new projection follows --seed
    return model.train(), src


def load_dense(spec: str, cfg: TrainConfig, max_length: int, *, flag: str, other: str = ""):
    """A SentenceTransformer for ``spec`` (teacher, guide or mining model) on the run's device, and its source.

    ``flag`` names the option that chose ``spec`` (``--mine-model``, ``--guide``, ``--teacher``); a PyLate
    ColBERT folder is refused under that name, before sentence-transformers fails on its MaxSim config; ``other``
    is appended to the advice (e.g. another option that avoids the model).
    """
    src = resolve_model(spec)
    if is_pylate_folder(src.path):
        raise ValueError(f"{flag} must be a single-vector (dense) model, but {spec} is a PyLate ColBERT folder: "
                         f"pass a dense model (e.g. minilm) to {flag}{other}")
    return load_sentence_transformer(src, max_length=max_length, device=resolve_device(cfg)), src


def model_identity(spec: str) -> dict:
    """What names a model in a cache key: its local path and revision."""
    src = resolve_model(spec)
    return {"path": str(src.path), "revision": src.revision}
