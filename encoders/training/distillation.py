"""ColBERT knowledge distillation (PyLate's ``Distillation``), optionally with in-batch negatives, whole-batch or GradCache.

Each example is a query, its ``n`` candidate documents and a teacher's ``n`` logits
(encoders/training/teachers.py). With ``s_ij = MaxSim(q_i, d_ij)``, min-max normalised over
``j`` when ``normalize_scores`` (PyLate's default):

    loss = 1/B sum_i KL( softmax(teacher_i) || softmax(s_i) )  +  w * 1/B sum_i InfoNCE_i

The KL term is PyLate's own maths (its ``extract_skiplist_mask`` and ``colbert_kd_scores``), so
with ``w = 0`` (``inbatch_weight``, the default) the loss equals ``pylate.losses.Distillation``.
``w > 0`` adds ColBERTv2's in-batch negatives (Santhanam et al. 2022, arXiv 2112.01488, sec. 3:
besides the KL to the cross-encoder, "in-batch negatives ... cross-entropy loss applied to the
positive score of each query against all passages corresponding to other queries in the same
batch"): query i's positive (its first candidate) against every one of the batch's ``B * n``
candidates, raw MaxSim as PyLate's ``Contrastive`` (encoders/training/contrastive.py's
:func:`~encoders.training.contrastive.infonce`), with the qrels false-negative mask when the batch
carries ids. The hard labels pull the student to the judged positive even where the teacher ranks
a negative above it, and the other queries' candidates give it negatives the teacher never scored.

With ``mini_batch_size`` below the ``B * n`` documents the batch goes through GradCache
(encoders/training/gradcache.py): same loss and gradients, activations of ``mini_batch_size``
texts at a time, the in-batch term's queries in chunks of ``mini_batch_size``
(tests/encoders/training/test_contrastive.py). PyLate has no cached distillation loss.

Columns: ``[queries (B, Tq), documents (B * n, Td)]``, example-major (example i's documents are
rows ``i*n .. i*n + n - 1``, its positive first); ``labels``: the teacher logits ``(B, n)``, or
``{"scores": (B, n), "doc_ids": (B, n), "relevant_ids": (B, R)}`` when the train set carries the
false-negative ids (:class:`~encoders.training.contrastive.IdCollator`).
"""

from __future__ import annotations

import torch  # noqa: F401 (the doctests use it)
import torch.nn.functional as F
from torch import Tensor

from encoders.training.contrastive import chunked_infonce, colbert_column_ids
from encoders.training.gradcache import GradCacheLoss
from retrieval.maxsim import maxsim

SCORES = "scores"  # the teacher logits' key in a labels dict


def split_labels(labels) -> tuple[Tensor | None, dict | None]:
    """``labels`` -> ``(teacher logits (B, n), ids or None)``: a bare tensor, or a dict with ``"scores"`` and the id tensors.

    >>> split_labels(torch.ones(1, 2))[1] is None, split_labels({"scores": torch.ones(1, 2), "doc_ids": torch.ones(1, 2)})[1].keys()
    (True, dict_keys(['doc_ids']))
    """
    if isinstance(labels, dict):
        return labels.get(SCORES), {k: v for k, v in labels.items() if k != SCORES}
    return labels, None


class ColbertDistillation(GradCacheLoss):
    """KL from the teacher's distribution over each query's candidates to the student's, plus ``inbatch_weight`` x in-batch InfoNCE (module docstring).

    ``mask_false_negatives``: in the in-batch term, leave out every candidate the qrels mark relevant
    to the query (when the batch carries ids), as the contrastive losses do.
    """

    def __init__(self, model, *, normalize_scores: bool = True, mini_batch_size: int | None = None, inbatch_weight: float = 0.0,
                 mask_false_negatives: bool = True):
        super().__init__(model, mini_batch_size=mini_batch_size)
        from pylate.losses.contrastive import extract_skiplist_mask  # lazy: pylate pulls fast-plaid; only ColBERT needs it
        from pylate.scores import colbert_kd_scores  # lazy: as above

        if not inbatch_weight >= 0:
            raise ValueError(f"the in-batch weight must be >= 0, got {inbatch_weight!r}")
        self._skiplist_masks, self._kd_scores = extract_skiplist_mask, colbert_kd_scores
        self.normalize_scores = normalize_scores
        self.inbatch_weight = float(inbatch_weight)
        self.mask_false_negatives = mask_false_negatives
        self.skiplist = list(model.skiplist)
        self.query_expansion = bool(model.do_query_expansion)
        self.last_masked: int = 0  # in-batch (query, document) logits masked in the last batch
        self.masked_total: int = 0  # ... over every batch seen (train_result.json)

    def check_columns(self, features: list[dict]) -> None:
        if len(features) != 2:
            raise ValueError(f"distillation expects two columns (queries, their n_ways documents), got {len(features)}")
        q, d = (f["input_ids"].shape[0] for f in features)
        if d % q:
            raise ValueError(f"distillation: {d} documents do not split evenly over {q} queries")

    def embed(self, features: dict) -> Tensor:
        return F.normalize(self.model(features)["token_embeddings"], p=2, dim=-1)  # (n, T, dim)

    def scores(self, q: Tensor, d: Tensor, features: list[dict]) -> Tensor:
        """Student scores ``(B, n)`` of each query against its own candidates, normalised as PyLate does."""
        b = q.shape[0]
        masks = self._skiplist_masks(sentence_features=features, skiplist=self.skiplist)
        d = d.view(b, -1, *d.shape[1:])  # (B, n, Td, dim)
        s = self._kd_scores(q, d, queries_mask=None if self.query_expansion else masks[0], documents_mask=masks[1].view(b, -1, *masks[1].shape[1:]))
        if self.normalize_scores:
            hi, lo = s.max(dim=1, keepdim=True).values, s.min(dim=1, keepdim=True).values
            s = (s - lo) / (hi - lo + 1e-8)
        return s

    def loss_from_embeddings(self, reps: list[Tensor], features: list[dict], labels, *, backward: bool = False) -> Tensor:
        teacher, ids = split_labels(labels)
        if teacher is None:
            raise ValueError("distillation needs the teacher's logits as labels (the train set's 'scores' column)")
        s = self.scores(reps[0], reps[1], features)
        loss = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(teacher, dim=-1), reduction="batchmean", log_target=True)
        if backward:
            loss.backward()
            loss = loss.detach()
        if self.inbatch_weight:
            loss = loss + self.inbatch_loss(reps[0], reps[1], features, ids, backward=backward)
        return loss

    def inbatch_loss(self, q: Tensor, d: Tensor, features: list[dict], ids: dict | None, *, backward: bool = False) -> Tensor:
        """``inbatch_weight`` x mean InfoNCE of each query's positive (column ``i*n``) against all ``B*n`` candidates.

        q: ``(B, Tq, dim)``, d: ``(B*n, Td, dim)`` -> scalar. ``backward``: per chunk of
        ``mini_batch_size`` queries (the ``(chunk, B*n, Tq, Td)`` similarities of one chunk at a time),
        accumulating ``.grad`` and returning the loss detached.
        """
        b = q.shape[0]
        n = d.shape[0] // b
        masks = self._skiplist_masks(sentence_features=features, skiplist=self.skiplist)  # [query (B, Tq), documents (B*n, Td)]
        col_ids = relevant = None
        if ids is not None and self.mask_false_negatives:
            col_ids, relevant = colbert_column_ids(ids["doc_ids"]), ids["relevant_ids"]
        q_mask = None if self.query_expansion else masks[0]
        total, self.last_masked = chunked_infonce(
            lambda rows: maxsim(q[rows], d, None if q_mask is None else q_mask[rows], masks[1]), lambda rows: rows * n,  # each query's positive: its first candidate
            b, self.mini_batch_size if backward and self.mini_batch_size else b, col_ids=col_ids, relevant=relevant,
            weight=self.inbatch_weight, backward=backward, device=q.device)
        self.masked_total += self.last_masked
        return total
