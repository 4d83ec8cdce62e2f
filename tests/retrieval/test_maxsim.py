"""MaxSim on hand-made tensors: exact values, masks on both sides, flat == padded, chunked search == brute force."""

import doctest

import numpy as np
import pytest
import torch

from retrieval import maxsim as ms
from retrieval.maxsim import maxsim, maxsim_flat, maxsim_search, pad_queries


def test_doctests():
    assert doctest.testmod(ms).failed == 0


def test_exact_values_and_shape():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]]])  # (Q=2, Lq=2, dim=2)
    d = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0], [0.5, 0.5]]])  # (D=2, Ld=3, 2)
    s = maxsim(q, d)
    assert s.shape == (2, 2)
    # q0/d0: max(2,0,1) + max(0,3,1) = 5;  q0/d1: max(-1,0,.5) + max(0,-1,.5) = 1
    # q1/d0: max(2,3,2) + 0 = 3;           q1/d1: max(-1,-1,1) + 0 = 1
    assert s.tolist() == [[5.0, 1.0], [3.0, 1.0]]


def test_padding_doc_tokens_never_score():
    q = torch.tensor([[[1.0, 0.0]]])
    d = torch.tensor([[[-5.0, 0.0], [100.0, 0.0]]])  # the 2nd token is padding with a huge score
    assert maxsim(q, d, d_mask=torch.tensor([[1, 0]])).item() == -5.0  # negative real max stays, padding is not 0 either
    assert maxsim(q, d).item() == 100.0


def test_padding_query_tokens_add_nothing():
    q = torch.tensor([[[1.0, 0.0], [7.0, 7.0]]])
    d = torch.tensor([[[2.0, 1.0]]])
    assert maxsim(q, d, q_mask=torch.tensor([[1, 0]])).item() == 2.0
    assert maxsim(q, d).item() == 2.0 + 21.0


def test_empty_document_scores_minus_inf():
    q = torch.tensor([[[1.0, 0.0]]])
    d = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    s = maxsim(q, d, q_mask=torch.tensor([[1]]), d_mask=torch.tensor([[1], [0]]))
    assert s[0, 0] == 1.0 and s[0, 1] == float("-inf")


def test_flat_equals_padded():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3, 1, 0, 5, 2])
    docs = [torch.randn(int(n), 8, generator=g) for n in lengths]
    q = torch.randn(4, 6, 8, generator=g)
    q_mask = torch.ones(4, 6, dtype=torch.bool)
    q_mask[1, 3:] = False
    d = torch.zeros(5, 5, 8)
    d_mask = torch.zeros(5, 5, dtype=torch.bool)
    for i, x in enumerate(docs):
        d[i, : len(x)], d_mask[i, : len(x)] = x, True
    flat = maxsim_flat(q, q_mask, torch.cat(docs), lengths)
    assert flat.shape == (4, 5)
    torch.testing.assert_close(flat, maxsim(q, d, q_mask, d_mask))
    assert torch.isinf(flat[:, 2]).all()


def test_pad_queries_shapes():
    q, m = pad_queries([np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)])
    assert q.shape == (2, 4, 3) and m.tolist() == [[True, True, False, False], [True] * 4]
    assert q[0, 2:].abs().sum() == 0


@pytest.mark.parametrize("chunk_docs", [1, 2, 7])
def test_chunked_search_equals_brute_force(chunk_docs):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 6, size=7)
    tokens = rng.standard_normal((int(lengths.sum()), 4)).astype(np.float16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    chunks = [(a, tokens[offsets[a] : offsets[min(a + chunk_docs, 7)]], lengths[a : a + chunk_docs]) for a in range(0, 7, chunk_docs)]
    q, q_mask = pad_queries([rng.standard_normal((3, 4)).astype(np.float32) for _ in range(5)])
    D, I = maxsim_search(q, q_mask, chunks, k=10, query_batch=2)
    assert D.shape == I.shape == (5, 10)
    full = maxsim_flat(q, q_mask, torch.from_numpy(tokens.astype(np.float32)), torch.from_numpy(lengths)).numpy()
    assert (I[:, 7:] == -1).all() and np.isinf(D[:, 7:]).all()  # only 7 documents
    np.testing.assert_array_equal(I[:, :7], np.argsort(-full, axis=1, kind="stable"))
    np.testing.assert_allclose(D[:, :7], -np.sort(-full, axis=1), rtol=1e-5, atol=1e-5)
