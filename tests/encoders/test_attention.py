"""encoders.attention: exact window semantics and agreement with a dense reference."""

import pytest
import torch

from encoders.attention import BACKENDS, select_backend, varlen_attention

CPU_BACKENDS = ["sdpa_blocked", "sdpa_loop"]


def _cu(lens):
    return torch.tensor([0, *lens]).cumsum(0).to(torch.int32)


def dense_reference(q, k, v, lens, window):
    """softmax(q k^T / sqrt(hd)) v with an explicit (N, N) mask: same sequence and |i - j| <= window."""
    N, nh, hd = q.shape
    seq = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))
    pos = torch.cat([torch.arange(n) for n in lens])
    allowed = seq[:, None] == seq[None, :]
    if window is not None:
        allowed &= (pos[:, None] - pos[None, :]).abs() <= window
    scores = torch.einsum("qhd,khd->hqk", q.double(), k.double()) / hd**0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v.double()).to(q.dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("window", [None, 64, 3])
def test_matches_dense_reference(backend, window):
    torch.manual_seed(0)
    lens = [1, 70, 300, 64, 129, 5, 200]  # boundaries fall inside 32-token blocks; some > window
    N = sum(lens)
    q, k, v = (torch.randn(N, 2, 8) for _ in range(3))
    out = varlen_attention(q, k, v, _cu(lens), max(lens), window=window, backend=backend)
    assert out.shape == (N, 2, 8)
    torch.testing.assert_close(out, dense_reference(q, k, v, lens, window), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_window_is_inclusive_64_each_side(backend):
    # q = k = 0 gives uniform weights over the allowed keys; v = one-hot of the key index, so
    # out[i, j] = 1 / |allowed(i)| exactly where key j is visible to query i.
    lens = [200, 150]
    N = sum(lens)
    q = k = torch.zeros(N, 1, N)
    v = torch.eye(N)[:, None, :]  # (N, 1, N)
    out = varlen_attention(q, k, v, _cu(lens), max(lens), window=64, backend=backend)[:, 0]  # (N, N)
    visible = out > 0
    assert visible[100].nonzero().flatten().tolist() == list(range(36, 165))  # 129 keys: 100 +- 64
    assert visible[0].nonzero().flatten().tolist() == list(range(0, 65))
    assert visible[200].nonzero().flatten().tolist() == list(range(200, 265))  # 2nd sequence starts at 200
    assert visible[199].nonzero().flatten().tolist() == list(range(135, 200))  # never crosses into it
    torch.testing.assert_close(out[100, 36], torch.tensor(1 / 129))


@pytest.mark.parametrize("block", [16, 32, 64, 128])
@pytest.mark.parametrize("window", [64, 3])
def test_blocked_local_any_block_size_matches_reference(block, window):
    from encoders.attention import _local_blocked_sdpa

    torch.manual_seed(3)
    lens = [1, 70, 300, 64, 129, 5, 200]
    q, k, v = (torch.randn(sum(lens), 2, 8) for _ in range(3))
    out = _local_blocked_sdpa(q, k, v, _cu(lens), window, 8**-0.5, block=block)
    torch.testing.assert_close(out, dense_reference(q, k, v, lens, window), atol=1e-5, rtol=1e-5)


def test_block_mask_built_once_per_forward_and_reused():
    # ModernBert passes one cache dict through all layers: the first local layer builds the block
    # mask, later local layers (same lengths) reuse it, and the result equals the uncached call.
    torch.manual_seed(2)
    lens = [70, 300, 5]
    q, k, v = (torch.randn(sum(lens), 2, 8) for _ in range(3))
    cache: dict = {}
    first = varlen_attention(q, k, v, _cu(lens), 300, window=64, backend="sdpa_blocked", cache=cache)
    (key,) = cache
    mask = cache[key]["mask"]
    assert mask.shape == (12, 1, 32, 160)  # ceil(375 / 32) blocks of 32 queries x (32 + 2 * 64) keys
    second = varlen_attention(q, k, v, _cu(lens), 300, window=64, backend="sdpa_blocked", cache=cache)
    assert cache[key]["mask"] is mask  # reused, not rebuilt
    plain = varlen_attention(q, k, v, _cu(lens), 300, window=64, backend="sdpa_blocked")
    torch.testing.assert_close(first, plain, atol=0, rtol=0)
    torch.testing.assert_close(second, plain, atol=0, rtol=0)
    torch.testing.assert_close(plain, dense_reference(q, k, v, lens, 64), atol=1e-5, rtol=1e-5)


def test_equal_lengths_fast_path_matches_reference():
    torch.manual_seed(1)
    lens = [96, 96, 96]
    q, k, v = (torch.randn(sum(lens), 3, 16) for _ in range(3))
    out = varlen_attention(q, k, v, _cu(lens), 96, window=None, backend="sdpa_blocked")
    torch.testing.assert_close(out, dense_reference(q, k, v, lens, None), atol=1e-5, rtol=1e-5)


def test_gradients_match_reference():
    torch.manual_seed(2)
    lens = [150, 40]
    q, k, v = (torch.randn(sum(lens), 2, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    w = torch.randn(sum(lens), 2, 8, dtype=torch.float64)
    (varlen_attention(q, k, v, _cu(lens), 150, window=64, backend="sdpa_blocked") * w).sum().backward()
    ours = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    (dense_reference(q, k, v, lens, 64) * w).sum().backward()
    for a, x in zip(ours, (q, k, v)):
        torch.testing.assert_close(a, x.grad)


def test_select_backend():
    assert select_backend("cpu", torch.float32) == "sdpa_blocked"
    assert select_backend("cpu", torch.bfloat16) == "sdpa_blocked"
    assert select_backend("cpu", torch.float32, "sdpa_loop") == "sdpa_loop"
    with pytest.raises(ValueError, match="sdpa_blocked"):
        select_backend("cpu", torch.float32, "flash")
    assert set(BACKENDS) == {"flash_attn", "torch_varlen", "sdpa_blocked", "sdpa_loop"}
