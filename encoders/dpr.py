"""Single-vector (DPR) encoding with a sentence-transformers model.

Texts are tokenized once, sorted by their true token length (not character length), and
batched so each batch pads to at most its own longest text; rows come back in input order.
Embeddings are float32 ``(n, dim)``; with ``similarity="cos"`` they are L2-normalised so
inner product is cosine (as BEIR's ``cos_sim`` and MTEB do).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

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
        order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first: padding only within similar lengths
        out: np.ndarray | None = None
        bs = self.cfg.batch_size
        for lo in tqdm(range(0, len(order), bs), desc=desc, unit="batch", leave=False, disable=len(order) <= bs):
            idx = order[lo : lo + bs]
            feats = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            feats = {k: v.to(self.model.device) for k, v in feats.items()}
            emb = self.model(feats)["sentence_embedding"].float()  # (b, dim)
            if self.cfg.similarity == "cos":
                emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb.cpu().numpy()
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def effective_max_length(model) -> int:
    from encoders.loading import effective_max_length as f

    return f(model)
