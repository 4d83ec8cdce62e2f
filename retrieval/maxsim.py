"""Late-interaction scoring (MaxSim) as pure functions.

ColBERT's relevance score (Khattab & Zaharia 2020, "ColBERT", eq. 3): for every query token,
the best inner product with any document token, summed over query tokens:

    s(q, d) = sum_i  max_j  <q_i, d_j>

:func:`maxsim` scores padded batches; :func:`maxsim_search` is exact top-k search over a
whole corpus stored flat (all documents' tokens concatenated, documents cut by ``offsets``),
in chunks of documents so memory stays bounded whatever the corpus size.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

NEG_INF = float("-inf")


def maxsim(q: torch.Tensor, d: torch.Tensor, q_mask: torch.Tensor | None = None, d_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MaxSim scores of every query against every document.

    q: ``(Q, Lq, dim)``, d: ``(D, Ld, dim)``, q_mask: ``(Q, Lq)``, d_mask: ``(D, Ld)`` (1 = real
    token, 0 = padding) -> scores ``(Q, D)``. Padding document tokens never win a max (they
    are set to -inf); padding query tokens add nothing to the sum. A document with no real
    token scores -inf.

    >>> q = torch.tensor([[[1., 0.], [0., 1.]]])                     # 1 query, 2 tokens
    >>> d = torch.tensor([[[1., 0.], [0., 0.5]], [[0., 2.], [9., 9.]]])
    >>> maxsim(q, d)                                                 # doc1: max(1,0)+max(0,.5); doc2: 9+9
    tensor([[ 1.5000, 18.0000]])
    >>> maxsim(q, d, d_mask=torch.tensor([[1, 1], [1, 0]]))          # doc2's 2nd token is padding: 0+2
    tensor([[1.5000, 2.0000]])
    >>> maxsim(q, d, q_mask=torch.tensor([[1, 0]]))                  # only the 1st query token counts
    tensor([[1., 9.]])
    """
    sim = torch.einsum("qid,njd->qnij", q, d)  # (Q, D, Lq, Ld)
    if d_mask is not None:
        sim = sim.masked_fill(~d_mask.bool()[None, :, None, :], NEG_INF)
    best = sim.max(dim=-1).values  # (Q, D, Lq)
    if q_mask is not None:
        best = best.masked_fill(~q_mask.bool()[:, None, :], 0.0)
    return best.sum(dim=-1)  # (Q, D)


def pad_queries(queries: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length query embeddings ``[(Lq_i, dim)]`` -> ``(Q, Lq_max, dim)`` float32 and mask ``(Q, Lq_max)``."""
    dim = queries[0].shape[1]
    lq = max(len(x) for x in queries)
    out = torch.zeros(len(queries), lq, dim)
    mask = torch.zeros(len(queries), lq, dtype=torch.bool)
    for i, x in enumerate(queries):
        out[i, : len(x)] = torch.as_tensor(np.asarray(x, dtype=np.float32))
        mask[i, : len(x)] = True
    return out, mask


def maxsim_flat(q: torch.Tensor, q_mask: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, *, block_tokens: int = 2048) -> torch.Tensor:
    """MaxSim against documents stored flat: ``tokens`` ``(T, dim)`` is every document's tokens in a row, ``lengths`` ``(D,)`` sums to ``T``.

    q: ``(Q, Lq, dim)``, q_mask: ``(Q, Lq)`` -> ``(Q, D)``. Same scores as :func:`maxsim` on the
    padded documents, without the padding: per block of whole documents (about ``block_tokens``
    tokens), one matrix product, then a max per document segment.
    Empty documents (length 0) score -inf.
    """
    Q, Lq, dim = q.shape
    qf = q.reshape(Q * Lq, dim)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    best = np.full((Q * Lq, len(lengths)), NEG_INF, dtype=np.float32)  # (Q*Lq, D); empty documents stay -inf
    # Documents in blocks of about block_tokens tokens: each block's (Q*Lq, T_b) scores stay in cache between
    # the product and the max (on a 2-core AVX2 CPU: 116 GFLOP/s at T_b = 2048 vs 70 at 65536).
    a = 0
    while a < len(lengths):
        b = max(a + 1, int(np.searchsorted(offsets, offsets[a] + block_tokens, side="right")) - 1)
        b = min(b, len(lengths))
        full = lengths[a:b] > 0
        if full.any():
            sim = (qf @ tokens[offsets[a] : offsets[b]].T).numpy()  # (Q*Lq, T_b)
            best[:, a:b][:, full] = np.maximum.reduceat(sim, (offsets[a:b] - offsets[a])[full], axis=1)  # 8x faster than torch.segment_reduce on CPU
        a = b
    best = torch.from_numpy(best).reshape(Q, Lq, -1).masked_fill(~q_mask.bool()[:, :, None], 0.0)
    return best.sum(dim=1)  # (Q, D)


def maxsim_search(
    q: torch.Tensor,
    q_mask: torch.Tensor,
    chunks: Iterable[tuple[int, np.ndarray, np.ndarray]],
    k: int,
    *,
    query_batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` MaxSim over a corpus streamed in chunks of whole documents.

    q: ``(Q, Lq, dim)``, q_mask: ``(Q, Lq)``; ``chunks`` yields ``(first_doc, tokens (T_c, dim),
    lengths (D_c,))`` (tokens may be float16; each chunk is turned to float32 once). Returns
    ``D, I`` each ``(Q, k)`` (scores descending, global document numbers; ``I == -1`` when the
    corpus has fewer than ``k`` documents). Peak memory: one chunk in float32 plus
    ``query_batch * Lq * T_c`` scores, plus the running ``(Q, k)`` top lists.
    """
    Q = q.shape[0]
    top_s = torch.full((Q, 0), NEG_INF)
    top_i = torch.zeros((Q, 0), dtype=torch.long)
    for first, tokens, lengths in chunks:
        t = torch.as_tensor(np.asarray(tokens, dtype=np.float32))
        ln = torch.as_tensor(np.asarray(lengths, dtype=np.int64))
        scores = torch.cat([maxsim_flat(q[lo : lo + query_batch], q_mask[lo : lo + query_batch], t, ln) for lo in range(0, Q, query_batch)])  # (Q, D_c)
        ids = torch.arange(first, first + len(ln)).expand(Q, -1)
        cand_s, cand_i = torch.cat([top_s, scores], 1), torch.cat([top_i, ids], 1)
        top_s, pos = cand_s.topk(min(k, cand_s.shape[1]), dim=1)  # sorted, descending
        top_i = cand_i.gather(1, pos)
    D = np.full((Q, k), NEG_INF, dtype=np.float32)
    I = np.full((Q, k), -1, dtype=np.int64)
    D[:, : top_s.shape[1]], I[:, : top_i.shape[1]] = top_s.numpy(), top_i.numpy()
    return D, I
