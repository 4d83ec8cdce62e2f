"""False-negative-aware contrastive losses (InfoNCE) for DPR and ColBERT, whole-batch or GradCache.

For query ``i`` of a batch and every document column ``j`` of the batch (all examples' positives
and mined negatives, gathered across ranks under torchrun), with ``t_i`` the column of i's positive:

    loss_i = -s(q_i, d_{t_i}) + log sum_{j not masked(i)} exp s(q_i, d_j)          loss = mean_i loss_i

    dpr:     s = scale * cos(q, d)          (sentence-transformers' MNRL; scale = 1/temperature)
    colbert: s = MaxSim(q, d) / temperature (PyLate's Contrastive; temperature 1)

``masked(i)`` removes in-batch false negatives, never ``t_i``:

- qrels (``false_negative_mask``): a column whose document the qrels mark relevant to query i, e.g.
  another query's positive that is also relevant to i. NFCorpus has ~40 relevant documents per
  query: unmasked, the loss pushes them away (fine-tuning there made MiniLM worse, issue 19).
- guide (``guide_mask``, dpr only): a column a guide model scores above i's own positive, GISTEmbed's
  rule (Solatorio 2024, arXiv 2402.16829; absolute margin 0). Not sentence-transformers'
  ``GISTEmbedLoss``: it takes at most one negative per example, adds anchor-anchor and
  positive-positive terms, and has no place for the qrels mask.

Ids travel with the batch: the train set has columns ``DOC_IDS`` (each example's positive and
negatives as corpus indices) and ``RELEVANT_IDS`` (its query's relevant corpus indices);
:class:`IdCollator` turns them into the loss's ``labels`` (int64 tensors, ``-1`` pads).

Score layouts (columns of the ``(B, D)`` score matrix, ``k`` negatives, ``N = 1 + k``):

    dpr     (sentence-transformers): [positives (B); negative_1 (B); ...]: column of example b's j-th doc = j*B + b, target b
    colbert (PyLate):                query-major: column b*N + j, target b*N

GradCache (encoders/training/gradcache.py), when ``mini_batch_size`` < the batch: the same loss and
gradients as the whole batch at a fraction of the activation memory; the loss's queries go in chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from encoders.training.gradcache import GradCacheLoss
from retrieval.maxsim import maxsim

DOC_IDS = "doc_ids"  # column: [positive, negative_1, ..] corpus indices of the example
RELEVANT_IDS = "relevant_ids"  # column: corpus indices of every document relevant to the example's query
ID_COLUMNS = (DOC_IDS, RELEVANT_IDS)
PAD = -1  # pads RELEVANT_IDS rows to the batch's longest; never a corpus index


# ---------------------------------------------------------------- maths


def false_negative_mask(doc_ids: Tensor, relevant_ids: Tensor, targets: Tensor) -> Tensor:
    """True where column ``j``'s document is relevant to query ``i`` and ``j`` is not i's target.

    doc_ids: ``(D,)`` corpus index per score column; relevant_ids: ``(Q, R)`` per query, padded with
    ``PAD``; targets: ``(Q,)`` target column per query -> ``(Q, D)`` bool.

    >>> doc_ids = torch.tensor([10, 11, 12, 13])          # columns: q0's positive, q1's positive, two negatives
    >>> relevant = torch.tensor([[10, 11], [11, -1]])     # q0: docs 10 and 11; q1: doc 11
    >>> false_negative_mask(doc_ids, relevant, torch.tensor([0, 1]))
    tensor([[False,  True, False, False],
            [False, False, False, False]])
    """
    hit = doc_ids[None, :, None] == relevant_ids[:, None, :]  # (Q, D, R)
    mask = (hit & (relevant_ids >= 0)[:, None, :]).any(dim=-1)  # (Q, D)
    return _spare_targets(mask, targets)


def guide_mask(guide_scores: Tensor, targets: Tensor) -> Tensor:
    """True where the guide scores column ``j`` above query ``i``'s target (GISTEmbed, margin 0).

    guide_scores: ``(Q, D)``, targets: ``(Q,)`` -> ``(Q, D)`` bool; ties are kept, the target never masked.

    >>> guide_mask(torch.tensor([[.5, .9, .5, .1]]), torch.tensor([0]))
    tensor([[False,  True, False, False]])
    """
    positive = guide_scores.gather(1, targets[:, None])  # (Q, 1)
    return _spare_targets(guide_scores > positive, targets)


def _spare_targets(mask: Tensor, targets: Tensor) -> Tensor:
    mask = mask.clone()
    mask[torch.arange(len(targets), device=mask.device), targets] = False
    return mask


def infonce(scores: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-query InfoNCE ``logsumexp_j scores[i, j] - scores[i, t_i]`` over the unmasked columns.

    scores: ``(Q, D)`` logits, targets: ``(Q,)``, mask: ``(Q, D)`` bool (True: left out) -> ``(Q,)``.

    >>> s = torch.tensor([[2., 1., 2.]])
    >>> torch.allclose(infonce(s, torch.tensor([0])), torch.logsumexp(s, 1) - 2)
    True
    >>> infonce(s, torch.tensor([0]), torch.tensor([[False, False, True]]))  # log(e^2 + e^1) - 2
    tensor([0.3133])
    """
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.logsumexp(scores, dim=1) - scores.gather(1, targets[:, None]).squeeze(1)


def chunked_infonce(scores, targets, batch: int, step: int, *, col_ids: Tensor | None = None, relevant: Tensor | None = None,
                    extra_mask=None, weight: float = 1.0, backward: bool = False, retain_graph: bool = False,
                    device=None) -> tuple[Tensor, int]:
    """``weight`` x mean masked InfoNCE over ``batch`` queries, ``step`` queries at a time -> ``(loss, masked logits)``.

    ``scores(rows) -> (len(rows), D)`` and ``targets(rows) -> (len(rows),)`` for a chunk of query
    indices ``rows``; ``col_ids``/``relevant``: the qrels false-negative mask's ids (None: no mask);
    ``extra_mask(rows, targets) -> (len(rows), D) bool | None`` ORed onto it (a guide).
    ``backward``: each chunk's share is backpropagated at once (``retain_graph`` when the chunks
    share a graph built before the loop) and the loss comes back detached. ``rows`` live on ``device``.
    """
    total, masked = None, 0
    for begin in range(0, batch, step):
        rows = torch.arange(begin, min(begin + step, batch), device=device)
        tgt = targets(rows)
        mask = None if relevant is None else false_negative_mask(col_ids, relevant[rows], tgt)
        extra = None if extra_mask is None else extra_mask(rows, tgt)
        if extra is not None:
            mask = extra if mask is None else mask | extra
        masked += 0 if mask is None else int(mask.sum())
        chunk = weight * infonce(scores(rows), tgt, mask).sum() / batch
        if backward:
            chunk.backward(retain_graph=retain_graph and begin + step < batch)
            chunk = chunk.detach()
        total = chunk if total is None else total + chunk
    return total, masked


def dpr_column_ids(doc_ids: Tensor) -> Tensor:
    """``(B, N)`` per-example ids -> ``(N*B,)`` in sentence-transformers' column order (column j*B + b)."""
    return doc_ids.T.reshape(-1)


def colbert_column_ids(doc_ids: Tensor) -> Tensor:
    """``(B, N)`` per-example ids -> ``(B*N,)`` in PyLate's query-major order (column b*N + j)."""
    return doc_ids.reshape(-1)


# ---------------------------------------------------------------- ids through the collator


class IdCollator:
    """Wraps a collator: the id columns become ``batch["label"] = {"doc_ids": (B, N), "relevant_ids": (B, R)}``.

    A label the inner collator made (distillation's teacher ``scores`` column, ``(B, n)``) goes into
    the same dict as ``"scores"`` (encoders/training/distillation.py reads it there).
    ``valid_label_columns`` names the id columns, so sentence-transformers' no-duplicates sampler
    (and ours) leaves them out of the duplicate-text check.
    """

    def __init__(self, inner):
        self.inner = inner
        self.valid_label_columns = list(ID_COLUMNS)

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner([{k: v for k, v in f.items() if k not in ID_COLUMNS} for f in features])
        if DOC_IDS in features[0]:
            ids = batch_ids([f[DOC_IDS] for f in features], [f[RELEVANT_IDS] for f in features])
            batch["label"] = ids if batch.get("label") is None else {"scores": batch["label"], **ids}
        return batch


def batch_ids(doc_ids: Sequence[Sequence[int]], relevant: Sequence[Sequence[int]]) -> dict[str, Tensor]:
    """Per-example id lists -> ``{"doc_ids": (B, N) int64, "relevant_ids": (B, R) int64 padded with PAD}``.

    >>> batch_ids([[3, 7], [4, 8]], [[3, 4], [4]])["relevant_ids"]
    tensor([[ 3,  4],
            [ 4, -1]])
    """
    width = max(1, max(len(r) for r in relevant))
    rel = torch.full((len(relevant), width), PAD, dtype=torch.long)
    for i, r in enumerate(relevant):
        rel[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return {"doc_ids": torch.as_tensor([list(d) for d in doc_ids], dtype=torch.long), "relevant_ids": rel}


# ---------------------------------------------------------------- the loss modules


class InBatchContrastive(GradCacheLoss):
    """InfoNCE over every document column of the batch with false negatives masked (module docstring).

    ``mini_batch_size`` (None or >= the batch: one forward and backward) turns GradCache on.
    ``mask_false_negatives``: apply the qrels mask when the batch carries ids. Subclasses give
    ``embed`` (features -> embeddings), ``doc_masks``, ``scores`` and the layout.
    """

    def __init__(self, model, *, mini_batch_size: int | None = None, mask_false_negatives: bool = True, gather_across_devices: bool = False):
        super().__init__(model, mini_batch_size=mini_batch_size)
        self.mask_false_negatives = mask_false_negatives
        self.gather_across_devices = gather_across_devices
        self.last_masked: int = 0  # masked (query, column) pairs in the last batch
        self.masked_total: int = 0  # ... summed over every batch seen (train_result.json)

    # --- what a subclass defines (and GradCacheLoss's ``embed``)
    def doc_masks(self, features: list[dict]) -> list[Tensor | None]:
        return [None] * (len(features) - 1)

    def candidates(self, docs: list[Tensor], masks: list[Tensor | None]):
        raise NotImplementedError

    def scores(self, q: Tensor, q_features: dict, rows: Tensor, cand) -> Tensor:
        raise NotImplementedError

    column_ids = staticmethod(dpr_column_ids)

    def target_columns(self, rows: Tensor, n_docs: int, world_batch: int) -> Tensor:
        raise NotImplementedError

    def guide_scores(self, features: list[dict]) -> Tensor | None:
        """A guide's ``(B, D)`` scores of the local queries against every column (None: no guide)."""
        return None

    # --- shared
    def check_columns(self, features: list[dict]) -> None:
        if len(features) < 2:
            raise ValueError(f"expected a query and at least one document column, got {len(features)} columns")

    def loss_from_embeddings(self, reps: list[Tensor], features: list[dict], labels: dict | None, *, backward: bool = False) -> Tensor:
        """Mean masked InfoNCE of ``reps`` (query column first); ``backward``: per query chunk, accumulating ``.grad``."""
        q, docs = reps[0], reps[1:]
        batch = q.shape[0]
        masks = self.doc_masks(features)
        offset, world = 0, 1
        if self.gather_across_devices and torch.distributed.is_initialized():
            offset, world = torch.distributed.get_rank() * batch, torch.distributed.get_world_size()
            docs = [torch.cat(torch.distributed.nn.functional.all_gather(d)) for d in docs]
            masks = [None if m is None else _gather(m) for m in masks]
        cand = self.candidates(docs, masks)
        relevant = col_ids = None
        if labels is not None and self.mask_false_negatives:
            doc_ids = labels["doc_ids"] if world == 1 else _gather(labels["doc_ids"])
            col_ids, relevant = self.column_ids(doc_ids), labels["relevant_ids"]
        guide = self.guide_scores(features)
        total, self.last_masked = chunked_infonce(
            lambda rows: self.scores(q[rows], features[0], rows, cand), lambda rows: self.target_columns(rows + offset, len(docs), batch * world),
            batch, self.mini_batch_size if backward else batch, col_ids=col_ids, relevant=relevant,
            extra_mask=None if guide is None else (lambda rows, targets: guide_mask(guide[rows], targets)),
            backward=backward, retain_graph=True, device=q.device)  # the gather/stack before the loop is shared by the chunks
        self.masked_total += self.last_masked
        return total


def _gather(t: Tensor) -> Tensor:
    """all_gather without gradients, concatenated in rank order."""
    parts = [torch.empty_like(t) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class DprContrastive(InBatchContrastive):
    """sentence-transformers' (Cached)MultipleNegativesRankingLoss with false negatives masked: ``s = scale * cos``.

    ``guide`` (a SentenceTransformer, frozen): GISTEmbed's in-batch filter on top of the qrels mask.
    """

    def __init__(self, model, *, scale: float = 20.0, guide=None, **kw):
        super().__init__(model, **kw)
        self.scale = scale
        self.guide = guide.eval().requires_grad_(False) if guide is not None else None

    def embed(self, features: dict) -> Tensor:
        return self.model(features)["sentence_embedding"]  # (n, dim)

    def candidates(self, docs, masks):
        return F.normalize(torch.cat(docs), dim=-1)  # (N*B, dim): [positives; negative_1; ...]

    def scores(self, q, q_features, rows, cand):
        return self.scale * F.normalize(q, dim=-1) @ cand.T  # (Qc, N*B)

    def target_columns(self, rows, n_docs, world_batch):
        return rows

    @torch.no_grad()
    def guide_scores(self, features: list[dict]) -> Tensor | None:
        """Guide cosine of every local query against every (gathered) document column: ``(B, N*B_world)``."""
        if self.guide is None:
            return None
        tok = self.model.tokenizer
        emb = []
        for f in features:  # the guide may tokenize differently: decode the student's ids, re-tokenize
            texts = tok.batch_decode(f["input_ids"], skip_special_tokens=True)
            g = self.guide.tokenize(texts)
            emb.append(self.guide({k: v.to(self.guide.device) for k, v in g.items()})["sentence_embedding"].float())
        q, docs = emb[0], emb[1:]
        if self.gather_across_devices and torch.distributed.is_initialized():
            docs = [_gather(d) for d in docs]
        return F.normalize(q, dim=-1) @ F.normalize(torch.cat(docs), dim=-1).T


class ColbertContrastive(InBatchContrastive):
    """PyLate's (Cached)Contrastive with false negatives masked: ``s = MaxSim(q, d) / temperature``.

    Token embeddings are L2-normalised; document tokens in the model's skiplist (punctuation) and
    padding never match; query tokens all count with query expansion ([MASK] padding), else the real ones.
    """

    column_ids = staticmethod(colbert_column_ids)

    def __init__(self, model, *, temperature: float = 1.0, **kw):
        super().__init__(model, **kw)
        self.temperature = temperature
        self.skiplist = list(model.skiplist)
        self.query_expansion = bool(model.do_query_expansion)
        self._skiplist_mask = type(model).skiplist_mask

    def embed(self, features: dict) -> Tensor:
        return F.normalize(self.model(features)["token_embeddings"], p=2, dim=-1)  # (n, T, dim)

    def doc_masks(self, features):
        return [f["attention_mask"].bool() & self._skiplist_mask(f["input_ids"], self.skiplist) for f in features[1:]]

    def candidates(self, docs, masks):
        width = max(d.shape[1] for d in docs)  # each column is padded to its own longest text
        docs = [F.pad(d, (0, 0, 0, width - d.shape[1])) for d in docs]
        masks = [F.pad(m, (0, width - m.shape[1])) for m in masks]
        b, n = docs[0].shape[0], len(docs)
        emb = torch.stack(docs, dim=1).reshape(b * n, width, -1)  # (B*N, T, dim), query-major
        return emb, torch.stack(masks, dim=1).reshape(b * n, width)

    def scores(self, q, q_features, rows, cand):
        emb, mask = cand
        q_mask = None if self.query_expansion else q_features["attention_mask"][rows]
        return maxsim(q, emb, q_mask, mask) / self.temperature  # (Qc, B*N)

    def target_columns(self, rows, n_docs, world_batch):
        return rows * n_docs
