"""encoders/training/contrastive.py and distillation.py: the false-negative masks on hand-made tensors;
the loss modules against sentence-transformers / PyLate and cached (GradCache) against whole-batch (issue 19)."""

from __future__ import annotations

import math

import pytest
import torch

from encoders.training.contrastive import (
    ColbertContrastive,
    DprContrastive,
    IdCollator,
    batch_ids,
    colbert_column_ids,
    dpr_column_ids,
    false_negative_mask,
    guide_mask,
    infonce,
)
from encoders.training.distillation import ColbertDistillation

# Two examples, one mined negative each. Corpus indices: q0's positive 10, q1's positive 11,
# negatives 20 (q0's) and 21 (q1's). q0's qrels: {10, 11} (its *second* relevant doc is q1's
# positive); q1's qrels: {11}.
DOC_IDS = torch.tensor([[10, 20], [11, 21]])  # (B, N)
RELEVANT = torch.tensor([[10, 11], [11, -1]])  # (B, R)


def test_mask_on_a_hand_made_batch_dpr_layout():
    cols = dpr_column_ids(DOC_IDS)  # [pos_0, pos_1, neg_0, neg_1]
    assert cols.tolist() == [10, 11, 20, 21]
    mask = false_negative_mask(cols, RELEVANT, targets=torch.tensor([0, 1]))
    assert mask.tolist() == [[False, True, False, False],  # q1's positive is relevant to q0: masked
                             [False, False, False, False]]  # q1: its own positive is the target, never masked


def test_mask_on_a_hand_made_batch_colbert_layout():
    cols = colbert_column_ids(DOC_IDS)  # query-major: [pos_0, neg_0, pos_1, neg_1]
    assert cols.tolist() == [10, 20, 11, 21]
    mask = false_negative_mask(cols, RELEVANT, targets=torch.tensor([0, 2]))
    assert mask.tolist() == [[False, False, True, False], [False, False, False, False]]


def test_target_column_is_never_masked_even_when_listed_twice():
    cols = torch.tensor([5, 5, 6])  # the same document in two columns (target and another)
    mask = false_negative_mask(cols, torch.tensor([[5, 6]]), torch.tensor([0]))
    assert mask.tolist() == [[False, True, True]]


def test_masked_logits_are_exactly_minus_inf_in_the_softmax():
    scores = torch.tensor([[3.0, 2.5, 1.0, 0.0], [1.0, 4.0, 0.5, 2.0]])
    mask = false_negative_mask(dpr_column_ids(DOC_IDS), RELEVANT, torch.tensor([0, 1]))
    got = infonce(scores, torch.tensor([0, 1]), mask)
    # q0 leaves out column 1 (2.5): log(e^3 + e^1 + e^0) - 3; q1 is unmasked
    want0 = math.log(math.exp(3) + math.exp(1) + 1) - 3
    want1 = math.log(math.exp(1) + math.exp(4) + math.exp(0.5) + math.exp(2)) - 4
    torch.testing.assert_close(got, torch.tensor([want0, want1]))
    unmasked = infonce(scores, torch.tensor([0, 1]))
    assert unmasked[0] > got[0] and unmasked[1] == got[1]


def test_guide_mask_drops_what_the_guide_ranks_above_the_positive():
    g = torch.tensor([[0.8, 0.9, 0.8, 0.1], [0.2, 0.3, 0.9, 0.3]])
    assert guide_mask(g, torch.tensor([0, 1])).tolist() == [[False, True, False, False], [False, False, True, False]]


def test_id_collator_turns_id_columns_into_labels():
    seen = []

    def inner(rows):
        seen.extend(rows)
        return {"anchor_input_ids": torch.zeros(len(rows), 3)}

    rows = [{"anchor": "a", "positive": "p", "doc_ids": [10, 20], "relevant_ids": [10, 11]},
            {"anchor": "b", "positive": "q", "doc_ids": [11, 21], "relevant_ids": [11]}]
    batch = IdCollator(inner)(rows)
    assert all(set(r) == {"anchor", "positive"} for r in seen)  # the text collator never sees the ids
    assert torch.equal(batch["label"]["doc_ids"], DOC_IDS) and torch.equal(batch["label"]["relevant_ids"], RELEVANT)
    assert batch_ids([[1]], [[]])["relevant_ids"].tolist() == [[-1]]


# ------------------------------------------------------------------ loss modules on a tiny model

QUERIES = ["cats purr when content", "dogs bark at night", "fish swim in schools", "birds sing at dawn", "cells divide by mitosis", "stars burn hydrogen"]
POSITIVES = ["a purring cat is content", "barking dogs at night", "schools of fish swim", "dawn chorus of birds", "mitosis divides cells", "hydrogen fusion in stars"]
NEGATIVES = ["the stock market fell", "rain in spain", "a recipe for bread", "football scores today", "the history of rome", "how to tie a knot"]
# Every query's positive; query 0 and query 1 also count each other's positive as relevant.
IDS = {"doc_ids": torch.tensor([[i, 100 + i] for i in range(6)]),
       "relevant_ids": torch.tensor([[0, 1], [1, 0]] + [[i, -1] for i in range(2, 6)])}


@pytest.fixture(scope="module")
def st_model(tiny_bert):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    return SentenceTransformer(str(tiny_bert), device="cpu").eval()  # no dropout: cached and whole-batch see one forward


def _grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def _run(loss_fn, model, features, labels):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(features, labels)
    loss.backward()
    return loss.detach(), _grads(model)


def _assert_same(a, b, tol=1e-5):
    (la, ga), (lb, gb) = a, b
    torch.testing.assert_close(la, lb, atol=tol, rtol=tol)
    assert ga.keys() == gb.keys() and ga
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=tol, rtol=tol, msg=k)


def _dpr_features(model):
    return [model.tokenize(QUERIES), model.tokenize(POSITIVES), model.tokenize(NEGATIVES)]


def test_dpr_loss_without_ids_equals_sentence_transformers_mnrl(st_model):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    feats = _dpr_features(st_model)
    ours = _run(DprContrastive(st_model, scale=20.0), st_model, feats, None)
    theirs = _run(MultipleNegativesRankingLoss(st_model, scale=20.0), st_model, feats, None)
    _assert_same(ours, theirs)


def test_dpr_loss_masks_the_qrels_false_negative(st_model):
    feats = _dpr_features(st_model)
    loss_fn = DprContrastive(st_model, scale=20.0)
    with torch.no_grad():
        masked = loss_fn(feats, IDS)
        assert loss_fn.last_masked == 2  # (q0, pos_1) and (q1, pos_0)
        plain = loss_fn(feats, None)
        q, p, n = (torch.nn.functional.normalize(st_model(f)["sentence_embedding"], dim=-1) for f in feats)
        scores = 20.0 * q @ torch.cat([p, n]).T  # (6, 12)
        scores[0, 1] = scores[1, 0] = float("-inf")
        want = (torch.logsumexp(scores, 1) - scores.diagonal()).mean()
    torch.testing.assert_close(masked, want)
    assert masked < plain
    off = DprContrastive(st_model, scale=20.0, mask_false_negatives=False)
    with torch.no_grad():
        torch.testing.assert_close(off(feats, IDS), plain)


@pytest.mark.parametrize("mini", [4])  # 4 + 2: an uneven last mini-batch
def test_dpr_cached_equals_whole_batch_loss_and_gradients(st_model, mini):
    feats = _dpr_features(st_model)
    whole = _run(DprContrastive(st_model, scale=20.0), st_model, feats, IDS)
    cached = _run(DprContrastive(st_model, scale=20.0, mini_batch_size=mini), st_model, feats, IDS)
    _assert_same(whole, cached)


def test_dpr_guide_mask_in_the_loss(st_model, tiny_bert):
    from sentence_transformers import SentenceTransformer

    guide = SentenceTransformer(str(tiny_bert), device="cpu")  # another copy: the guide is frozen, the student is not
    feats = _dpr_features(st_model)
    loss_fn = DprContrastive(st_model, scale=20.0, guide=guide, mask_false_negatives=False)
    with torch.no_grad():
        got = loss_fn(feats, None)
        g = loss_fn.guide_scores(feats)
        q, p, n = (torch.nn.functional.normalize(st_model(f)["sentence_embedding"], dim=-1) for f in feats)
        scores = 20.0 * q @ torch.cat([p, n]).T
        targets = torch.arange(6)
        want = infonce(scores, targets, g > g.diagonal()[:, None]).mean()
    assert loss_fn.last_masked == int((g > g.diagonal()[:, None]).sum()) > 0
    torch.testing.assert_close(got, want)
    assert not any(p.requires_grad for p in guide.parameters())
    whole = _run(loss_fn, st_model, feats, IDS)
    cached = _run(DprContrastive(st_model, scale=20.0, guide=guide, mask_false_negatives=False, mini_batch_size=2), st_model, feats, IDS)
    _assert_same(whole, cached)


# ------------------------------------------------------------------ ColBERT


@pytest.fixture(scope="module")
def colbert_model(tiny_bert):
    from encoders.colbert import ColbertConfig, load_colbert

    return load_colbert(tiny_bert, ColbertConfig(query_length=16, doc_length=32, projection_seed=0, device="cpu")).eval()


def _colbert_features(model):
    return [model.tokenize(QUERIES, is_query=True, pad=True), model.tokenize(POSITIVES, is_query=False, pad=True),
            model.tokenize(NEGATIVES, is_query=False, pad=True)]


def test_colbert_loss_without_ids_equals_pylate_contrastive(colbert_model):
    from pylate.losses import Contrastive

    feats = _colbert_features(colbert_model)
    _assert_same(_run(ColbertContrastive(colbert_model), colbert_model, feats, None), _run(Contrastive(colbert_model), colbert_model, feats, None))


def test_colbert_loss_masks_the_qrels_false_negative(colbert_model):
    feats = _colbert_features(colbert_model)
    loss_fn = ColbertContrastive(colbert_model)
    with torch.no_grad():
        masked, plain = loss_fn(feats, IDS), loss_fn(feats, None)
    assert loss_fn.last_masked == 0  # the last call had no ids
    with torch.no_grad():
        loss_fn(feats, IDS)
    assert loss_fn.last_masked == 2 and masked < plain


@pytest.mark.parametrize("mini", [4])  # 4 + 2: an uneven last mini-batch
def test_colbert_cached_equals_whole_batch_loss_and_gradients(colbert_model, mini):
    feats = _colbert_features(colbert_model)
    whole = _run(ColbertContrastive(colbert_model), colbert_model, feats, IDS)
    cached = _run(ColbertContrastive(colbert_model, mini_batch_size=mini), colbert_model, feats, IDS)
    _assert_same(whole, cached)


# ------------------------------------------------------------------ ColBERT distillation (encoders/training/distillation.py)

N_WAYS = 3  # each query's positive and two other candidates, example-major


def _distillation_batch(model):
    docs = [d for i in range(len(QUERIES)) for d in (POSITIVES[i], NEGATIVES[i], POSITIVES[(i + 1) % len(QUERIES)])]
    feats = [model.tokenize(QUERIES, is_query=True, pad=True), model.tokenize(docs, is_query=False, pad=True)]
    teacher = torch.tensor([[3.0, 0.5, 1.0], [2.0, 2.0, -1.0], [0.1, 0.2, 0.3], [5.0, 0.0, 0.0], [1.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    return feats, teacher


@pytest.mark.parametrize("normalize", [True, False])
def test_colbert_distillation_equals_pylate_distillation(colbert_model, normalize):
    from pylate.losses import Distillation

    feats, teacher = _distillation_batch(colbert_model)
    ours = _run(ColbertDistillation(colbert_model, normalize_scores=normalize), colbert_model, feats, teacher)
    _assert_same(ours, _run(Distillation(colbert_model, normalize_scores=normalize), colbert_model, feats, teacher))
    assert ours[0] > 0  # the student's untrained scores do not match the teacher's distribution


@pytest.mark.parametrize("mini", [4, 7])  # 6 queries and 18 documents: uneven last mini-batches
def test_colbert_cached_distillation_equals_whole_batch_loss_and_gradients(colbert_model, mini):
    feats, teacher = _distillation_batch(colbert_model)
    whole = _run(ColbertDistillation(colbert_model), colbert_model, feats, teacher)
    _assert_same(whole, _run(ColbertDistillation(colbert_model, mini_batch_size=mini), colbert_model, feats, teacher))


def test_distillation_rejects_documents_that_do_not_split_over_the_queries(colbert_model):
    feats, teacher = _distillation_batch(colbert_model)
    feats[1] = {k: v[:-1] for k, v in feats[1].items()}  # 17 documents for 6 queries
    with pytest.raises(ValueError, match="17 documents do not split evenly over 6 queries"):
        ColbertDistillation(colbert_model)(feats, teacher)
    with pytest.raises(ValueError, match="teacher's logits"):
        ColbertDistillation(colbert_model)(_distillation_batch(colbert_model)[0], None)


# ------------------------------------------------------------------ distillation + in-batch negatives (ColBERTv2)


def test_in_batch_term_on_hand_made_embeddings(colbert_model):
    """Two queries, two candidates each, one token per text: the in-batch term is InfoNCE over all four, exact."""
    loss_fn = ColbertDistillation(colbert_model, inbatch_weight=0.5)
    q = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (B=2, Tq=1, dim=2)
    d = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 1.0]], [[1.0, 0.0]]])  # (B*n=4, Td=1, dim): q0's pos, neg, q1's pos, neg
    token = next(i for i in range(1000, 2000) if i not in loss_fn.skiplist)
    feats = [{"input_ids": torch.full((2, 1), token), "attention_mask": torch.ones(2, 1, dtype=torch.long)},
             {"input_ids": torch.full((4, 1), token), "attention_mask": torch.ones(4, 1, dtype=torch.long)}]
    # MaxSim rows: q0 -> [1, 0, 0, 1] (target column 0), q1 -> [0, 1, 1, 0] (target column 2)
    e = math.e
    plain = 0.5 * (math.log(2 * e + 2) - 1) * 2 / 2  # both queries: log(e + 1 + 1 + e) - 1, mean, times the weight
    got = loss_fn.inbatch_loss(q, d, feats, None)
    assert got.item() == pytest.approx(plain) and loss_fn.last_masked == 0
    # q0's qrels also hold doc 31, the candidate in column 3 (q1's negative): masked out of q0's softmax only
    ids = {"doc_ids": torch.tensor([[10, 20], [11, 31]]), "relevant_ids": torch.tensor([[10, 31], [11, -1]])}
    masked = loss_fn.inbatch_loss(q, d, feats, ids)
    assert masked.item() == pytest.approx(0.5 * ((math.log(e + 2) - 1) + (math.log(2 * e + 2) - 1)) / 2) and loss_fn.last_masked == 1
    assert ColbertDistillation(colbert_model, inbatch_weight=0.5, mask_false_negatives=False).inbatch_loss(q, d, feats, ids).item() == pytest.approx(plain)


def _distillation_ids():
    docs = [[i, 100 + i, (i + 1) % len(QUERIES)] for i in range(len(QUERIES))]  # the _distillation_batch candidates' ids
    return {"doc_ids": torch.tensor(docs), "relevant_ids": IDS["relevant_ids"]}


def test_distillation_with_in_batch_adds_the_weighted_contrastive_term(colbert_model):
    feats, teacher = _distillation_batch(colbert_model)
    labels = {"scores": teacher, **_distillation_ids()}
    with torch.no_grad():
        kl = ColbertDistillation(colbert_model)(feats, labels)  # the ids change nothing without the in-batch term
        both = ColbertDistillation(colbert_model, inbatch_weight=0.3)
        total = both(feats, labels)
        emb = [both.embed(f) for f in feats]
        term = both.inbatch_loss(emb[0], emb[1], feats, _distillation_ids())
    torch.testing.assert_close(kl, ColbertDistillation(colbert_model)(feats, teacher).detach())
    torch.testing.assert_close(total, kl + term)
    assert term > 0 and both.last_masked > 0  # query 0's candidate 1 (query 1's positive) and the next query's positives


@pytest.mark.parametrize("mini", [4, 7])
def test_cached_distillation_with_in_batch_equals_whole_batch(colbert_model, mini):
    feats, teacher = _distillation_batch(colbert_model)
    labels = {"scores": teacher, **_distillation_ids()}
    whole = _run(ColbertDistillation(colbert_model, inbatch_weight=0.5), colbert_model, feats, labels)
    _assert_same(whole, _run(ColbertDistillation(colbert_model, inbatch_weight=0.5, mini_batch_size=mini), colbert_model, feats, labels))
    assert whole[0] > _run(ColbertDistillation(colbert_model), colbert_model, feats, labels)[0]


def test_id_collator_keeps_the_teacher_scores_beside_the_ids():
    rows = [{"query": "a", "documents": ["p", "n"], "scores": [1.0, 0.0], "doc_ids": [10, 20], "relevant_ids": [10, 11]},
            {"query": "b", "documents": ["q", "m"], "scores": [0.5, 0.2], "doc_ids": [11, 21], "relevant_ids": [11]}]
    batch = IdCollator(lambda rs: {"label": torch.tensor([r["scores"] for r in rs])})(rows)
    assert torch.equal(batch["label"]["scores"], torch.tensor([[1.0, 0.0], [0.5, 0.2]]))
    assert torch.equal(batch["label"]["doc_ids"], DOC_IDS) and torch.equal(batch["label"]["relevant_ids"], RELEVANT)
