"""encoders/colbert.py: the new projection is seeded from a local RNG (issue 17, #14b).

The same checkpoint and seed give the same projection on every load; the caller's global torch RNG
is left exactly as it was; a different seed gives a different projection (training passes --seed).
"""

from __future__ import annotations

import torch

from encoders.colbert import PROJECTION_SEED, ColbertConfig, load_colbert


def _projection(model) -> torch.Tensor:
    return model[-1].linear.weight  # (embedding_size, hidden)


def test_load_colbert_leaves_the_global_rng_untouched(tiny_bert):
    torch.manual_seed(5)
    before = torch.get_rng_state()
    load_colbert(tiny_bert, ColbertConfig(doc_length=32))
    assert torch.equal(torch.get_rng_state(), before), "load_colbert reseeded or consumed the caller's RNG"
    expected_next = torch.rand(3, generator=torch.Generator().manual_seed(5))  # what the caller would draw with no load in between
    assert torch.equal(torch.rand(3), expected_next)


def test_projection_follows_the_seed_and_defaults_to_projection_seed(tiny_bert):
    default = load_colbert(tiny_bert, ColbertConfig(doc_length=32))
    same = load_colbert(tiny_bert, ColbertConfig(doc_length=32, projection_seed=PROJECTION_SEED))
    other = load_colbert(tiny_bert, ColbertConfig(doc_length=32, projection_seed=PROJECTION_SEED + 1))
    assert ColbertConfig().projection_seed == PROJECTION_SEED
    assert _projection(default).shape == (128, 32)
    assert torch.equal(_projection(default), _projection(same))
    assert not torch.equal(_projection(default), _projection(other))
