"""Single-vector (DPR) encoding with a sentence-transformers model.

Texts are tokenized once, sorted by their true token length (not character length), and
batched so each batch pads to at most its own longest text; rows come back in input order. On CPU
a batch also holds at most `cpu_token_budget` padded tokens.
Embeddings are float32 ``(n, dim)``; with ``similarity="cos"`` they are L2-normalised so
inner product is cosine (as BEIR's ``cos_sim`` and MTEB do).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from encoders.loading import effective_max_length
from encoders.modernbert import CPU_CHUNK_BYTES

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class DenseEncoderConfig:
    similarity: str = "cos"  # cos | dot
    query_prefix: str = ""
    doc_prefix: str = ""
    batch_size: int = 64
    dtype: str = "fp32"


class DenseEncoder:
    """Wraps a ``SentenceTransformer``: ``encode_queries`` / ``encode_documents`` -> ``(n, dim)`` float32."""

    def __init__(self, model, cfg: DenseEncoderConfig = DenseEncoderConfig()):
        if cfg.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {cfg.dtype!r}; choose from {', '.join(DTYPES)}")
        if cfg.similarity not in ("cos", "dot"):
            raise ValueError(f"unknown similarity {cfg.similarity!r}; choose cos or dot")
        self.model = model.to(DTYPES[cfg.dtype]).eval()
        self.cfg = cfg
        self.max_length = effective_max_length(model)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.cfg.query_prefix + t for t in texts], desc="queries")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.cfg.doc_prefix + t for t in texts], desc="documents")

    @torch.inference_mode()
    def _encode(self, texts: list[str], desc: str) -> np.ndarray:
        tok = self.model.tokenizer
        # ST strips each text before tokenizing; do the same so embeddings match model.encode.
        ids = tok([t.strip() for t in texts], truncation=True, max_length=self.max_length, add_special_tokens=True)["input_ids"]
        lengths = [len(x) for x in ids]
        order = np.argsort([-n for n in lengths], kind="stable")  # longest first: padding only within similar lengths
        out: np.ndarray | None = None
        budget = cpu_token_budget(self.model) if self.model.device.type == "cpu" else None
        bar = tqdm(total=len(order), desc=desc, unit="text", leave=False, disable=len(order) <= self.cfg.batch_size)
        for idx in batches_by_tokens(order, lengths, self.cfg.batch_size, budget):
            feats = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            feats = {k: v.to(self.model.device) for k, v in feats.items()}
            emb = self.model(feats)["sentence_embedding"].float()  # (b, dim)
            if self.cfg.similarity == "cos":
                emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb.cpu().numpy()
            bar.update(len(idx))  # after the batch: the bar counts texts encoded, not texts started
        bar.close()
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def cpu_token_budget(model) -> int:
    """Padded tokens per forward on CPU so the (tokens, intermediate) float32 activation fits
    CPU_CHUNK_BYTES, the cap ModernBert's CPU runs use, for the same reason: glibc serves larger
    blocks with fresh mmaps whose pages fault on first touch, in every layer. MiniLM-L6, 64 x 256
    tokens, 2-core EPYC, three rounds: 5,294-5,541 tok/s in forwards of 64 texts, 6,282-6,553 in
    forwards of 8 (2,048 tokens). Results do not depend on it beyond float rounding."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    inter = getattr(config, "intermediate_size", None) or 4 * getattr(config, "hidden_size", 1024)
    return max(1, CPU_CHUNK_BYTES // (inter * 4))


def batches_by_tokens(order, lengths, batch_size: int, budget: int | None) -> Iterator[list[int]]:
    """Consecutive runs of `order` of at most `batch_size` texts and, when a budget is given, at most
    `budget` padded tokens (rows x the run's longest length); a text longer than the budget is a
    batch of its own. Longest-first order pads least; any order works (the throughput benchmark
    also batches documents in their generated order)."""
    batch: list[int] = []
    longest = 0  # of the texts in `batch`
    for i in order:
        full = len(batch) == batch_size or (budget is not None and (len(batch) + 1) * max(longest, lengths[i]) > budget)
        if batch and full:
            yield batch
            batch, longest = [], 0
        batch.append(int(i))
        longest = max(longest, lengths[i])
    if batch:
        yield batch
