"""Multi-vector (ColBERT) encoding with PyLate's ``pylate.models.ColBERT``.

A PyLate model folder loads as-is (its projection, markers and lengths come from its
config). A sentence-transformers or plain Hugging Face checkpoint becomes a ColBERT: PyLate
appends a new ``hidden -> 128`` linear projection, adds the ``[Q] `` / ``[D] `` marker tokens,
pads queries to ``query_length`` with ``[MASK]`` (query expansion, Khattab & Zaharia 2020,
"ColBERT", sec. 3.2) and cuts documents at ``doc_length``. The new projection and the new
marker embeddings are random, so :func:`load_colbert` draws them from a forked RNG seeded with
``cfg.projection_seed``: the same checkpoint and seed give the same embeddings on every run, and
the caller's global RNG is left as it was (evaluation keeps PROJECTION_SEED; training passes --seed).

Embeddings are L2-normalised per token; punctuation tokens are dropped from documents
(PyLate's skiplist), so a document of ``n`` tokens gives ``<= n`` vectors.

    enc = ColbertEncoder(load_colbert(src, ColbertConfig()), ColbertConfig())
    enc.encode_queries(["what is a cell?"])[0].shape     # (32, 128)
    enc.encode_documents(["A cell is ..."])[0].shape     # (Ld, 128), Ld <= doc_length
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from encoders.dpr import DTYPES

log = logging.getLogger(__name__)

PROJECTION_SEED = 0  # evaluation's seed for the new projection (and new marker embeddings) of a non-PyLate checkpoint


@dataclass(frozen=True)
class ColbertConfig:
    query_length: int = 32  # ColBERT's Nq: queries padded with [MASK] up to this
    doc_length: int = 300  # max document tokens; up to 8192 for long-context backbones
    embedding_size: int = 128  # only for a new projection (PyLate folders keep their own)
    batch_size: int = 32
    dtype: str = "fp32"
    device: str = "cpu"
    query_prefix: str | None = None  # None: the model's own marker ("[Q] " for a new ColBERT)
    doc_prefix: str | None = None
    projection_seed: int = PROJECTION_SEED  # seeds a new projection / new marker rows (PyLate folders keep theirs); training: --seed


def is_pylate_folder(path: Path) -> bool:
    """A PyLate (or Stanford) ColBERT checkpoint: its module stack already ends in a projection."""
    path = Path(path)
    modules = path / "modules.json"
    if modules.is_file():
        return any(m.get("type", "").startswith("pylate") for m in json.loads(modules.read_text()))
    cfg = path / "config.json"
    return cfg.is_file() and "HF_ColBERT" in (json.loads(cfg.read_text()).get("architectures") or [])


def load_colbert(path: Path | str, cfg: ColbertConfig, *, trust_remote_code: bool = False):
    """Load ``path`` as a ``pylate.models.ColBERT`` on ``cfg.device`` in ``cfg.dtype``."""
    from pylate.models import ColBERT  # lazy: pylate pulls fast-plaid and is slow to import; only loading a ColBERT needs it

    if cfg.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {cfg.dtype!r}; choose from {', '.join(DTYPES)}")
    model_kwargs = {} if trust_remote_code else {"use_safetensors": True}
    # A new projection / new marker rows are drawn from torch's global RNG: fork it, so they follow
    # cfg.projection_seed alone and the caller's RNG (dropout, data order) is the same after loading.
    cuda = _cuda_devices(cfg.device)
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(cfg.projection_seed)
        for d in cuda:  # only the forked device (torch.manual_seed would reseed every GPU, unrestored)
            with torch.cuda.device(d):
                torch.cuda.manual_seed(cfg.projection_seed)
        model = ColBERT(
            str(path),
            device=cfg.device,
            query_length=cfg.query_length,
            document_length=cfg.doc_length,
            embedding_size=None if is_pylate_folder(Path(path)) else cfg.embedding_size,
            query_prefix=cfg.query_prefix,
            document_prefix=cfg.doc_prefix,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
            local_files_only=True,
        )
    return model.to(DTYPES[cfg.dtype]).eval()


def _cuda_devices(device: str) -> list[int]:
    """The CUDA device whose RNG state loading on ``device`` may draw from (fork only that one: forking all
    would create a context on every GPU of the machine in every torchrun process)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def effective_lengths(model) -> tuple[int, int]:
    """``(query_length, doc_length)`` texts are really cut to: PyLate's settings capped by the position table."""
    pos = getattr(model[0].auto_model.config, "max_position_embeddings", None) or 1 << 30
    return min(model.query_length, pos), min(model.document_length, pos)


class ColbertEncoder:
    """Wraps a PyLate ColBERT: texts -> one float32 ``(L_i, dim)`` array per text."""

    def __init__(self, model, cfg: ColbertConfig):
        self.model = model
        self.cfg = cfg
        self.query_length, self.doc_length = effective_lengths(model)
        if self.doc_length < model.document_length:
            log.warning("doc length %d exceeds the position table; documents are cut at %d tokens", model.document_length, self.doc_length)
            model.document_length = self.doc_length
        self.dim = model[-1].out_features
        self.query_prefix, self.doc_prefix = model.query_prefix, model.document_prefix
        log.info("ColBERT: query length %d ([MASK]-expanded: %s), doc length %d, dim %d, markers %r/%r, dtype %s", self.query_length, model.do_query_expansion, self.doc_length, self.dim, self.query_prefix, self.doc_prefix, cfg.dtype)

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._encode(list(texts), is_query=True)

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._encode(list(texts), is_query=False)

    @torch.inference_mode()
    def _encode(self, texts: list[str], *, is_query: bool) -> list[np.ndarray]:
        if not texts:
            return []
        embs = self.model.encode(texts, batch_size=self.cfg.batch_size, is_query=is_query, show_progress_bar=False, convert_to_numpy=True)
        return [np.asarray(e, dtype=np.float32) for e in embs]
