"""encoders.padding: hand-made masks with exact expected values (cf. ModernBERT's tests/test_padding.py)."""

import torch

from encoders.padding import pad, position_ids_from_cu_seqlens, sequence_ids_from_cu_seqlens, unpad


def test_unpad_hand_made_mask():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)  # (B, T, H)
    packed, indices, cu_seqlens, max_len = unpad(hidden, mask)
    assert indices.tolist() == [0, 1, 2, 4, 5]
    assert cu_seqlens.tolist() == [0, 3, 5] and cu_seqlens.dtype == torch.int32
    assert max_len == 3
    assert packed.shape == (5, 3)
    assert torch.equal(packed, hidden.view(8, 3)[[0, 1, 2, 4, 5]])


def test_unpad_token_ids_2d():
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    packed, indices, cu_seqlens, max_len = unpad(ids, (ids != 0).long())
    assert packed.tolist() == [5, 6, 7] and indices.tolist() == [0, 1, 3] and cu_seqlens.tolist() == [0, 2, 3]


def test_pad_round_trip_zero_fills():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    hidden = torch.randn(2, 4, 3)
    packed, indices, _, _ = unpad(hidden, mask)
    restored = pad(packed, indices, batch=2, seqlen=4)
    assert restored.shape == (2, 4, 3)
    assert torch.equal(restored[mask.bool()], hidden[mask.bool()])
    assert torch.equal(restored[~mask.bool()], torch.zeros(3, 3))


def test_pad_is_differentiable():
    packed = torch.randn(5, 2, requires_grad=True)
    out = pad(packed, torch.tensor([0, 1, 2, 4, 5]), batch=2, seqlen=4)
    out.sum().backward()
    assert torch.equal(packed.grad, torch.ones(5, 2))


def test_left_padding_and_empty_row():
    mask = torch.tensor([[0, 1, 1], [0, 0, 0], [1, 0, 1]])
    _, indices, cu_seqlens, max_len = unpad(torch.zeros(3, 3, 1), mask)
    assert indices.tolist() == [1, 2, 6, 8] and cu_seqlens.tolist() == [0, 2, 2, 4] and max_len == 2


def test_positions_restart_per_sequence():
    cu = torch.tensor([0, 3, 5, 5, 6], dtype=torch.int32)  # lengths 3, 2, 0, 1
    assert position_ids_from_cu_seqlens(cu, 6).tolist() == [0, 1, 2, 0, 1, 0]
    assert sequence_ids_from_cu_seqlens(cu, 6).tolist() == [0, 0, 0, 1, 1, 3]
