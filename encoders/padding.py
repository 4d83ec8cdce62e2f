"""Remove and restore padding: the (batch, seqlen, ...) <-> (total_nnz, ...) round trip.

ModernBERT (Warner et al., 2024, arXiv 2412.13663, section 2.1.3 "Unpadding") removes padding
once, right after the embeddings, and runs every layer on the packed tokens of all sequences
concatenated. Attention then needs to know where each sequence starts: `cu_seqlens`.

Conventions (as in flash-attention's `bert_padding.py`):
    B          batch size
    T          padded sequence length
    total_nnz  number of real (non-pad) tokens in the batch, = mask.sum()
    cu_seqlens (B + 1,) int32, cumulative lengths starting at 0: sequence b is
               packed[cu_seqlens[b] : cu_seqlens[b + 1]]

Example:
    >>> mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    >>> hidden = torch.arange(8.0).view(2, 4, 1)
    >>> packed, indices, cu_seqlens, max_len = unpad(hidden, mask)
    >>> packed.view(-1).tolist(), indices.tolist(), cu_seqlens.tolist(), max_len
    ([0.0, 1.0, 2.0, 4.0, 5.0], [0, 1, 2, 4, 5], [0, 3, 5], 3)
    >>> pad(packed, indices, batch=2, seqlen=4).view(2, 4).tolist()
    [[0.0, 1.0, 2.0, 0.0], [4.0, 5.0, 0.0, 0.0]]
"""

from __future__ import annotations

import torch


def unpad(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Gather the non-pad tokens of a padded batch.

    Args:
        hidden: (B, T, ...) padded values (hidden states, or input ids of shape (B, T)).
        mask:   (B, T) 1 for real tokens, 0 for padding (any position, not only right padding).

    Returns:
        packed:     (total_nnz, ...) the real tokens, sequence after sequence, in order.
        indices:    (total_nnz,) int64 positions of those tokens in the flattened (B * T) batch.
        cu_seqlens: (B + 1,) int32 cumulative sequence lengths, starting at 0.
        max_len:    length of the longest sequence (a Python int, as varlen kernels want).
    """
    B, T = mask.shape
    seqlens = mask.sum(dim=1, dtype=torch.int32)  # (B,)
    indices = torch.nonzero(mask.reshape(-1), as_tuple=False).flatten()  # (total_nnz,)
    cu_seqlens = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))  # (B + 1,)
    max_len = int(seqlens.max()) if B > 0 else 0
    packed = hidden.reshape(B * T, *hidden.shape[2:])[indices]  # (total_nnz, ...)
    return packed, indices, cu_seqlens, max_len


def pad(packed: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Scatter packed tokens back into a zero-padded batch; the inverse of `unpad`.

    Args:
        packed:  (total_nnz, ...) values of the real tokens.
        indices: (total_nnz,) positions in the flattened (batch * seqlen) batch, from `unpad`.
        batch, seqlen: B and T of the padded output.

    Returns:
        (B, T, ...) with zeros at the padded positions. Differentiable with respect to `packed`.
    """
    out = packed.new_zeros(batch * seqlen, *packed.shape[1:])  # (B * T, ...)
    out = out.index_put((indices,), packed)  # out-of-place so autograd flows to `packed`
    return out.view(batch, seqlen, *packed.shape[1:])  # (B, T, ...)


def position_ids_from_cu_seqlens(cu_seqlens: torch.Tensor, total_nnz: int) -> torch.Tensor:
    """Position of each packed token inside its own sequence (RoPE restarts at 0 per sequence).

    Args:
        cu_seqlens: (B + 1,) cumulative lengths.
        total_nnz:  cu_seqlens[-1], passed so no device sync is needed.

    Returns:
        (total_nnz,) int64, e.g. cu_seqlens [0, 3, 5] -> [0, 1, 2, 0, 1].
    """
    seq_ids = sequence_ids_from_cu_seqlens(cu_seqlens, total_nnz)  # (total_nnz,)
    starts = cu_seqlens.to(torch.int64)[seq_ids]  # (total_nnz,) start of each token's sequence
    return torch.arange(total_nnz, device=cu_seqlens.device) - starts


def sequence_ids_from_cu_seqlens(cu_seqlens: torch.Tensor, total_nnz: int) -> torch.Tensor:
    """Index of the sequence each packed token belongs to.

    Args:
        cu_seqlens: (B + 1,) cumulative lengths.
        total_nnz:  cu_seqlens[-1].

    Returns:
        (total_nnz,) int64, e.g. cu_seqlens [0, 3, 5] -> [0, 0, 0, 1, 1]. Empty sequences are skipped.
    """
    seqlens = (cu_seqlens[1:] - cu_seqlens[:-1]).to(torch.int64)  # (B,)
    return torch.repeat_interleave(torch.arange(seqlens.numel(), device=cu_seqlens.device), seqlens,
                                   output_size=total_nnz)
