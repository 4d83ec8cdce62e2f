"""The form ColBERT document tokens are stored in: float16 (exact) or a compressed code that FAISS decodes.

A :class:`~retrieval.token_store.TokenStore` keeps every document token in one form, and every
multi-vector backend reads tokens back through it (candidate generation and MaxSim re-ranking
alike), so the form is a setting that changes scores and is keyed like an index option.

    fp16            2 x dim bytes per token: the exact option (256 B at dim 128)
    residual-4bit   coarse centroid + 4 bits per dimension of the residual (ColBERTv2 / PLAID's
                    compression with nbits=4, Santhanam et al. 2022): 2 + dim/2 bytes (66 B at 128)
    residual-8bit   coarse centroid + 8 bits per dimension: 2 + dim bytes (130 B)
    residual-pq     coarse centroid + product-quantized residual, one byte per 4 dimensions:
                    2 + dim/4 bytes (34 B at 128, ColBERTv2's nbits=2 budget)
    <FAISS factory> any FAISS index with a standalone codec (``sa_encode``/``sa_decode``), e.g.
                    "IVF4096,SQ4" or "OPQ32,IVF1024,PQ32x8"; ``{nlist}`` is filled in as below

The residual forms use FAISS's IVF codecs (``sa_encode`` writes the centroid number, then the
residual's code). ``nlist`` is the power of two nearest ``sqrt(tokens)`` (FAISS's own rule of
thumb), from an estimate of the corpus' token count, so a code is 2 bytes of centroid number up to
65,536 lists. The codec is trained once, on float16-rounded tokens of a training sample chosen by
content (:func:`sample_order`), so the same corpus gives the same codec whatever its order or ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

FP16 = "fp16"
FORMS = {
    FP16: None,
    "residual-4bit": "IVF{nlist},SQ4",
    "residual-8bit": "IVF{nlist},SQ8",
    "residual-pq": "IVF{nlist},PQ{m4}x8",
}
TRAIN_PER_CENTROID = 64  # k-means sample: this many tokens per coarse centroid (FAISS warns below 39)
MIN_TRAIN = 50_000


def nlist_for(n_tokens: int) -> int:
    """Coarse centroids for ``n_tokens`` tokens: the power of two nearest sqrt(n), at least 1, at most n / 39."""
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n_tokens))))
    return max(1, min(nlist, n_tokens // 39))


def factory_for(form: str, n_tokens: int, dim: int) -> str | None:
    """The FAISS factory string of store form ``form`` for about ``n_tokens`` tokens of ``dim`` dimensions (None: float16)."""
    if form == FP16:
        return None
    pattern = FORMS.get(form, form)
    if dim % 4:
        raise ValueError(f"token store {form!r}: dimension {dim} is not a multiple of 4")
    return pattern.format(nlist=nlist_for(n_tokens), m4=dim // 4)


def check_form(form: str) -> None:
    """Refuse a form that is neither a name of :data:`FORMS` nor a FAISS factory string, before any work."""
    if form in FORMS:
        return
    try:
        index = faiss.index_factory(8, form.format(nlist=1, m4=2))
        index.sa_code_size()
    except Exception as e:  # noqa: BLE001 - FAISS raises RuntimeError with its own text
        raise ValueError(f"unknown --token-store {form!r}: use {', '.join(FORMS)}, or a FAISS factory string with a standalone codec "
                         f"(such as 'IVF{{nlist}},SQ4'): {str(e).strip().splitlines()[-1] if str(e).strip() else e}") from None


def train_size(n_tokens: int) -> int:
    """Tokens to train the codec of a corpus of ``n_tokens`` tokens on."""
    return max(MIN_TRAIN, TRAIN_PER_CENTROID * nlist_for(n_tokens))


def sample_order(texts: Sequence[str]) -> np.ndarray:
    """Document numbers ordered by a hash of their text: a training sample taken from the front depends on the content only (not on the corpus order or the ids)."""
    keys = [hashlib.sha1(t.encode("utf-8")).digest() + i.to_bytes(8, "big") for i, t in enumerate(texts)]  # equal texts: equal vectors, so their order cannot matter
    return np.array([int.from_bytes(k[-8:], "big") for k in sorted(keys)], dtype=np.int64)


@dataclass
class Codec:
    """A trained FAISS standalone codec: ``encode`` float32 ``(n, dim)`` -> uint8 ``(n, code_size)``, ``decode`` back."""

    factory: str
    index: faiss.Index

    @classmethod
    def train(cls, factory: str, sample: np.ndarray, *, seed: int = 0) -> "Codec":
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        index = faiss.index_factory(sample.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.cp.seed, ivf.cp.niter = seed, 20
        coder = faiss.downcast_index(ivf if ivf is not None else index)
        if getattr(coder, "pq", None) is not None:
            coder.pq.cp.seed = seed
            if hasattr(coder, "do_polysemous_training"):
                coder.do_polysemous_training = False  # no use to a codec, and slow
        index.train(sample)
        return cls(factory, index)

    @property
    def code_size(self) -> int:
        return int(self.index.sa_code_size())

    def encode(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, self.code_size), dtype=np.uint8)
        return self.index.sa_encode(np.ascontiguousarray(x, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if len(codes) == 0:
            return np.zeros((0, self.index.d), dtype=np.float32)
        return self.index.sa_decode(np.ascontiguousarray(codes, dtype=np.uint8))

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, factory: str, buf: bytes) -> "Codec":
        return cls(factory, faiss.deserialize_index(np.frombuffer(buf, dtype=np.uint8)))
