"""Variable-length (unpadded) bidirectional attention, global or sliding-window, with several backends.

ModernBERT (arXiv 2412.13663, section 2.1) alternates global attention (every third layer) with
local attention over a 128-token window, i.e. a token at position i sees keys j with |i - j| <= 64
(transformers' `create_bidirectional_sliding_window_mask`, flash-attn `window_size=(64, 64)`).
All layers run on packed tokens, so every backend takes

    q, k, v     (total_nnz, nh, hd)   packed queries/keys/values, nh heads of size hd
    cu_seqlens  (B + 1,) int32        sequence b is rows cu_seqlens[b] : cu_seqlens[b + 1]
    max_len     int                   longest sequence
    window      int | None            half window (64) for local layers, None for global

and returns (total_nnz, nh, hd). Backends (`BACKENDS`, chosen by `select_backend`):

    flash_attn    flash-attn 2 `flash_attn_varlen_func`, CUDA, fp16/bf16 only.
    torch_varlen  `torch.nn.attention.varlen.varlen_attn` (torch >= 2.10), CUDA, fp16/bf16 only.
                  Its docstring documents (-1, -1), (-1, 0) and (W, 0); we pass (64, 64) for local
                  layers, as for flash-attn. NOT verified on a GPU in this repository yet.
    sdpa_blocked  any device, any dtype, exact. Global layers: one SDPA call when all lengths
                  are equal, else one SDPA call per sequence on views. Local layers: the
                  packed stream is cut into 32-token query blocks; each block attends to the
                  32 + 2 * 64 = 160 keys around it with a mask "same sequence and
                  |i - j| <= window", so memory is O(total_nnz * 160), never O(L^2), and no
                  Python loop runs over sequences. The mask depends only on the lengths, so one
                  forward builds it once (`cache`) and every local layer reuses it.
    sdpa_loop     any device, exact, simplest: one SDPA call per sequence; local layers use a
                  banded (L, L) boolean mask, so it is only meant as a reference for short inputs.

Measured on this repository's CPU (AMD EPYC, 2 cores, AVX2, torch 2.11; shared with other jobs,
so +-2x noise), one attention call, 12 heads x 64, fp32, best of 3, in ms:

    tokens (sequences)               layer    blocked-local / padded-global   per-sequence loop
    16.7k (64, Normal(256, 64))      local    396                             1087 (banded L x L)
    16.7k (64, Normal(256, 64))      global   1271 (pad + key mask)           1073
    16.4k (32 x 512)                 local    191-383                         277-2867
    8192 (1 x 8192)                  local    60-196                          2229
    12.1k (3000, 4100, 5000)         global   1891 (pad + key mask)           1219

so local layers use the blocked path (10-30x faster than a banded full mask at 8k tokens, and
O(N) memory), and global layers use one call for equal lengths, else the per-sequence loop.
Query block size, measured later on an idle machine (one local layer, 12 x 64 heads, fp32, best of
5 interleaved, mask built once): 32 x 512 tokens: block 32 157 ms, 64 176 ms, 128 238 ms;
32 docs of Normal(256, 64): 52, 61, 75 ms. Hence LOCAL_BLOCK = 32.
FlexAttention (document + window block mask) was not measured: on CPU it needs torch.compile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from encoders.padding import sequence_ids_from_cu_seqlens

LOCAL_BLOCK = 32  # query rows per block of the blocked sliding window (fastest measured; see above)


# ----------------------------------------------------------------------------- CPU/any-device paths


def _global_sdpa(q, k, v, cu_seqlens, max_len, scale):
    """Full attention inside each sequence.

    Equal lengths (fixed-size batches, or one sequence): a single SDPA call on a reshape.
    Otherwise one SDPA call per sequence on views of the packed tensors (no padding copies; on this
    CPU it measured as fast as or faster than padding to (B, nh, T, hd) with a key mask).
    """
    N, nh, hd = q.shape
    B = cu_seqlens.numel() - 1
    if N == B * max_len:  # all sequences have length max_len: a plain reshape, no mask
        qb, kb, vb = (x.view(B, max_len, nh, hd).transpose(1, 2) for x in (q, k, v))  # (B, nh, T, hd)
        out = F.scaled_dot_product_attention(qb, kb, vb, scale=scale)  # (B, nh, T, hd)
        return out.transpose(1, 2).reshape(N, nh, hd)
    return sdpa_loop(q, k, v, cu_seqlens, max_len, window=None, scale=scale)


def local_blocks(cu_seqlens, total, window, block=LOCAL_BLOCK):
    """Block layout of sliding-window attention on a packed stream of `total` tokens.

    The stream is cut into nb = ceil(total / block) query blocks. Query block b (rows
    b * block .. b * block + block - 1) can only see keys within `window` of it, i.e. the
    K = block + 2 * window rows starting at b * block - window. Padding rows (past `total`, or
    before 0) get sequence id -1, so a padding query sees padding keys only (never an empty row,
    so no NaN anywhere). Depends only on the lengths: ModernBERT builds it once per forward and
    every local layer reuses it.

    Returns:
        dict with nb, tail (padding rows after the stream), K, block and
        mask (nb, 1, block, K) bool: same sequence and |i - j| <= window.
    """
    nb = math.ceil(total / block)
    tail = nb * block - total
    K = block + 2 * window
    device = cu_seqlens.device
    seq = sequence_ids_from_cu_seqlens(cu_seqlens, total)  # (N,)
    seq_q = F.pad(seq, (0, tail), value=-1).view(nb, block)  # (nb, block)
    seq_k = F.pad(seq, (window, tail + window), value=-1).unfold(0, K, block)  # (nb, K)
    offset = torch.arange(block, device=device)[:, None] - torch.arange(-window, block + window, device=device)[None, :]
    band = offset.abs() <= window  # (block, K): query i of a block vs key j of its window, same for every block
    mask = (seq_q[:, :, None] == seq_k[:, None, :]) & band  # (nb, block, K)
    return {"nb": nb, "tail": tail, "K": K, "block": block, "mask": mask[:, None]}


def _additive_mask(lb: dict, dtype: torch.dtype) -> torch.Tensor:
    """lb's bool mask as 0 / -inf in `dtype` (what SDPA would otherwise convert on every call), memoised in lb."""
    key = ("additive", dtype)
    if key not in lb:
        lb[key] = torch.zeros(lb["mask"].shape, dtype=dtype, device=lb["mask"].device).masked_fill_(~lb["mask"], float("-inf"))
    return lb[key]


def _local_blocked_sdpa(q, k, v, cu_seqlens, window, scale, block=LOCAL_BLOCK, blocks=None):
    """Sliding-window attention (|i - j| <= window, same sequence) on the packed stream.

    Each 32-token query block attends to its K = 32 + 2 * 64 = 160 neighbouring keys (see
    `local_blocks`), gathered with `unfold` from one padded copy of k and v: memory O(N * K), never
    O(L^2), no Python loop over sequences. `blocks` is `local_blocks(...)` computed earlier for the
    same lengths and window, or None.
    """
    N, nh, hd = q.shape
    lb = blocks if blocks is not None else local_blocks(cu_seqlens, N, window, block)
    nb, tail, K, block = lb["nb"], lb["tail"], lb["K"], lb["block"]
    if tail:
        q = F.pad(q, (0, 0, 0, 0, 0, tail))
    qb = q.view(nb, block, nh, hd).transpose(1, 2)  # (nb, nh, block, hd), a view when no tail
    kb, vb = (
        F.pad(x, (0, 0, 0, 0, window, tail + window)).unfold(0, K, block).permute(0, 1, 3, 2)
        for x in (k, v)
    )  # (nb * block + 2 * window) rows -> (nb, nh, hd, K) windows -> (nb, nh, K, hd)
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=_additive_mask(lb, q.dtype), scale=scale)  # (nb, nh, block, hd)
    return out.transpose(1, 2).reshape(nb * block, nh, hd)[:N]  # (N, nh, hd)


def sdpa_blocked(q, k, v, cu_seqlens, max_len, *, window, scale, cache=None):
    """`cache`: an optional dict shared by the layers of one forward; the local block mask is
    built on the first local layer and reused by the others."""
    if window is None:
        return _global_sdpa(q, k, v, cu_seqlens, max_len, scale)
    cache = {} if cache is None else cache
    key = ("local_blocks", window)
    if key not in cache:
        cache[key] = local_blocks(cu_seqlens, q.shape[0], window)
    return _local_blocked_sdpa(q, k, v, cu_seqlens, window, scale, blocks=cache[key])


def sdpa_loop(q, k, v, cu_seqlens, max_len, *, window, scale, cache=None):
    """Reference path: one SDPA call per sequence, banded (L, L) mask on local layers."""
    outs = []
    bounds = cu_seqlens.tolist()
    for start, end in zip(bounds[:-1], bounds[1:]):
        L = end - start
        if L == 0:
            continue
        qs, ks, vs = (x[start:end].transpose(0, 1)[None] for x in (q, k, v))  # (1, nh, L, hd) views
        mask = None
        if window is not None and L > window + 1:
            pos = torch.arange(L, device=q.device)
            mask = (pos[:, None] - pos[None, :]).abs() <= window  # (L, L)
        outs.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale)[0].transpose(0, 1))
    return torch.cat(outs, dim=0)  # (N, nh, hd)


# ----------------------------------------------------------------------------- CUDA varlen kernels


def flash_attn(q, k, v, cu_seqlens, max_len, *, window, scale, cache=None):
    """flash-attn 2 varlen kernel (the kernel the ModernBERT paper trained with)."""
    from flash_attn import flash_attn_varlen_func  # lazy: flash-attn is optional (CUDA builds only)

    return flash_attn_varlen_func(
        q, k, v, cu_seqlens, cu_seqlens, max_len, max_len,
        softmax_scale=scale, causal=False, window_size=(-1, -1) if window is None else (window, window),
    )


def torch_varlen(q, k, v, cu_seqlens, max_len, *, window, scale, cache=None):
    """torch.nn.attention.varlen.varlen_attn (flash kernel shipped with torch >= 2.10)."""
    from torch.nn.attention.varlen import varlen_attn  # lazy: exists only in torch >= 2.10

    return varlen_attn(
        q, k, v, cu_seqlens, cu_seqlens, max_len, max_len,
        scale=scale, window_size=(-1, -1) if window is None else (window, window),
    )


AttentionFn = Callable[..., torch.Tensor]
BACKENDS: dict[str, AttentionFn] = {
    "flash_attn": flash_attn,
    "torch_varlen": torch_varlen,
    "sdpa_blocked": sdpa_blocked,
    "sdpa_loop": sdpa_loop,
}


@functools.cache
def _has_flash_attn() -> bool:
    try:
        import flash_attn  # noqa: F401  # lazy: probe for the optional flash-attn (CUDA builds only)
    except ImportError:
        return False
    return True


@functools.cache
def _has_torch_varlen() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401  # lazy: probe; exists only in torch >= 2.10
    except ImportError:
        return False
    return True


def select_backend(device: torch.device | str, dtype: torch.dtype, requested: str = "auto") -> str:
    """Name of the attention backend to run on `device` / `dtype`.

    `requested="auto"`: flash_attn if importable on CUDA in fp16/bf16, else torch_varlen if this
    torch has it (CUDA, fp16/bf16), else sdpa_blocked (any device/dtype; the fastest exact CPU path
    we measured). Any other value must be a key of `BACKENDS` and is returned as is.
    """
    if requested != "auto":
        if requested not in BACKENDS:
            raise ValueError(f"unknown attention backend {requested!r}; valid: {['auto', *BACKENDS]}")
        return requested
    half = dtype in (torch.float16, torch.bfloat16)
    if torch.device(device).type == "cuda" and half:
        if _has_flash_attn():
            return "flash_attn"
        if _has_torch_varlen():
            return "torch_varlen"
    return "sdpa_blocked"


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_len: int,
    *,
    window: int | None,
    backend: str,
    cache: dict | None = None,
) -> torch.Tensor:
    """Bidirectional attention within each packed sequence.

    Args:
        q, k, v:    (total_nnz, nh, hd).
        cu_seqlens: (B + 1,) int32 cumulative lengths.
        max_len:    longest sequence length.
        window:     None for global attention; w for local attention, |i - j| <= w (ModernBERT: 64).
        backend:    a key of `BACKENDS` (see `select_backend`).
        cache:      optional dict shared by the layers of one forward (same cu_seqlens), where a
                    backend may keep what depends only on the lengths (sdpa_blocked: the block mask).

    Returns:
        (total_nnz, nh, hd), softmax(q k^T / sqrt(hd)) v restricted to each sequence (and window).
    """
    scale = q.shape[-1] ** -0.5
    return BACKENDS[backend](q, k, v, cu_seqlens, max_len, window=window, scale=scale, cache=cache)
