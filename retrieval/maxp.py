"""MaxP for long documents: split each document into token windows, score every window, keep the best.

Dai & Callan, "Deeper Text Understanding for IR with Contextual Neural Language Modeling" (SIGIR 2019):
a document's score is the max over its passages. It gives a short-context model a fair chance on
long documents, where truncation would throw away everything past its first window.
"""

from __future__ import annotations

import numpy as np


def chunk_text(text: str, tokenizer, window: int, stride: int | None = None) -> list[str]:
    """Cut ``text`` into pieces of at most ``window`` tokens (no special tokens), starting every ``stride`` tokens.

    Cuts fall on token boundaries, taken from the tokenizer's character offsets, so each piece is a
    substring of ``text`` that re-tokenizes to (almost exactly) its window. An empty text gives ``[""]``.
    """
    stride = stride or window
    if window <= 0 or stride <= 0:
        raise ValueError("window and stride must be positive")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)["offset_mapping"]
    if not offsets:
        return [text]
    pieces = []
    for start in range(0, len(offsets), stride):
        end = min(start + window, len(offsets))
        pieces.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end == len(offsets):
            break
    return pieces


def max_over_chunks(D: np.ndarray, I: np.ndarray, chunk_doc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk hits -> document hits: each document scores its best chunk; keep the top ``k`` documents.

    ``D, I``: ``(Q, kc)`` chunk scores and chunk indices (-1 = no hit); ``chunk_doc``: ``(n_chunks,)``
    document index of each chunk. Returns ``(Q, k)`` document scores and indices, padded with -1.

    >>> D = np.array([[0.9, 0.8, 0.7, 0.1]]); I = np.array([[2, 0, 1, 3]])
    >>> max_over_chunks(D, I, np.array([0, 0, 1, 2]), k=2)
    (array([[0.9, 0.8]]), array([[1, 0]]))
    """
    Q = D.shape[0]
    out_D = np.full((Q, k), -np.inf, dtype=D.dtype)
    out_I = np.full((Q, k), -1, dtype=np.int64)
    for q in range(Q):
        best: dict[int, float] = {}
        for score, ci in zip(D[q], I[q]):
            if ci < 0:
                continue
            d = int(chunk_doc[ci])
            if d not in best:  # hits arrive best first, so the first chunk seen is the document's max
                best[d] = float(score)
                if len(best) == k:
                    break
        for j, (d, s) in enumerate(best.items()):
            out_D[q, j], out_I[q, j] = s, d
    return out_D, out_I
