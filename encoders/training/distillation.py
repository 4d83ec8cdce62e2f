"""ColBERT knowledge distillation (PyLate's ``Distillation``), whole-batch or GradCache.

Each example is a query, its ``n`` candidate documents and a teacher's ``n`` logits
(encoders/training/teachers.py). With ``s_ij = MaxSim(q_i, d_ij)``, min-max normalised over
``j`` when ``normalize_scores`` (PyLate's default):

    loss = 1/B sum_i KL( softmax(teacher_i) || softmax(s_i) )

The maths is PyLate's own (its ``extract_skiplist_mask`` and ``colbert_kd_scores``), so the
whole-batch loss equals ``pylate.losses.Distillation``; with ``mini_batch_size`` below the
``B * n`` documents the batch goes through GradCache (encoders/training/gradcache.py): same loss
and gradients, activations of ``mini_batch_size`` texts at a time
(tests/encoders/training/test_contrastive.py). PyLate has no cached distillation loss.

Columns: ``[queries (B, Tq), documents (B * n, Td)]``, example-major (example i's documents are
rows ``i*n .. i*n + n - 1``); ``labels``: the teacher logits ``(B, n)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from encoders.training.gradcache import GradCacheLoss


class ColbertDistillation(GradCacheLoss):
    """KL from the teacher's distribution over each query's candidates to the student's (module docstring)."""

    def __init__(self, model, *, normalize_scores: bool = True, mini_batch_size: int | None = None):
        super().__init__(model, mini_batch_size=mini_batch_size)
        from pylate.losses.contrastive import extract_skiplist_mask  # lazy: pylate pulls fast-plaid; only ColBERT needs it
        from pylate.scores import colbert_kd_scores  # lazy: as above

        self._skiplist_masks, self._kd_scores = extract_skiplist_mask, colbert_kd_scores
        self.normalize_scores = normalize_scores
        self.skiplist = list(model.skiplist)
        self.query_expansion = bool(model.do_query_expansion)

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
        if labels is None:
            raise ValueError("distillation needs the teacher's logits as labels (the train set's 'scores' column)")
        s = self.scores(reps[0], reps[1], features)
        loss = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(labels, dim=-1), reduction="batchmean", log_target=True)
        if backward:
            loss.backward()
            loss = loss.detach()
        return loss
