"""Teacher scores for ColBERT distillation: one teacher or several fused, then normalised and tempered.

For each query and its ``n_ways`` candidates (the positive and the mined negatives):

    s_t(q, d)   each teacher's score        bm25: BM25 over the training corpus (encoders/bm25.py settings)
                                            a PyLate ColBERT folder: MaxSim; any other model: cosine
    s(q, d)     one teacher: s_t; several (``--teacher bm25+minilm``, or weighted ``bm25*0.3+minilm*0.7``):
                :func:`retrieval.fusion.fuse` of the teachers' per-query candidate scores
                (``--teacher-fusion``: combsum by default, over per-query minmax scores; wsum when weighted)
    logits      norm(teacher_scale * s) / T   per query over its candidates (``--teacher-norm``,
                                              ``--teacher-temperature``)
    targets     softmax(logits)               PyLate's Distillation loss takes the logits as labels and
                                              applies the log-softmax itself (KL(targets || student))

``norm`` (:func:`normalize_scores`): ``none``, ``minmax`` ((s - min) / (max - min), to [0, 1]) or
``zscore`` ((s - mean) / std). Why: PyLate's loss min-max normalises the *student's* scores by
default (``--student-minmax``; JaColBERTv2.5, Clavié 2024), so the student's softmax spans at most
a factor e between its best and worst candidate, while raw teacher cosines (0.2..0.8) give nearly
flat targets and BM25 scores (0..40) nearly one-hot ones. Normalising the teacher the same way puts
both on one scale, and ``T`` then sets how sharp the targets are (lightonai/pylate#59 discusses
the normalisation: PyLate leaves it to the user, since ranges differ per teacher). With
``norm=none, T=1`` the targets are ``softmax(teacher_scale * s)``, as before these options existed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from encoders.bm25 import BM25Config, BM25Index
from encoders.colbert import ColbertConfig, ColbertEncoder, is_pylate_folder, load_colbert
from encoders.dpr import DenseEncoder, DenseEncoderConfig
from encoders.loading import resolve_model
from encoders.training.config import TrainConfig, resolve_device
from encoders.training.models import load_dense
from retrieval.fusion import fuse, parse_fusion
from retrieval.maxsim import maxsim

log = logging.getLogger(__name__)

EPS = 1e-9  # floor of every normaliser's denominator, as retrieval.fusion (all-equal scores -> 0, never 0/0)
TEACHER_NORMS = ("none", "minmax", "zscore")
BM25 = "bm25"


# ---------------------------------------------------------------- targets from scores (pure)


def normalize_scores(scores: torch.Tensor, method: str) -> torch.Tensor:
    """Normalise each row (one query's candidates) of ``scores (n, n_ways)``: none, minmax or zscore.

    zscore uses the population std; denominators are floored at ``EPS`` (a row of equal scores -> zeros).

    >>> s = torch.tensor([[3., 2., 1.], [5., 5., 5.]])
    >>> normalize_scores(s, "minmax")
    tensor([[1.0000, 0.5000, 0.0000],
            [0.0000, 0.0000, 0.0000]])
    >>> normalize_scores(torch.tensor([[1., 3.]]), "zscore")
    tensor([[-1.,  1.]])
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n, n_ways), got shape {tuple(scores.shape)}")
    if method == "none":
        return scores.clone()
    if method == "minmax":
        lo, hi = scores.min(dim=1, keepdim=True).values, scores.max(dim=1, keepdim=True).values  # (n, 1)
        return (scores - lo) / (hi - lo).clamp_min(EPS)
    if method == "zscore":
        mean, std = scores.mean(dim=1, keepdim=True), scores.std(dim=1, keepdim=True, correction=0)  # (n, 1)
        return (scores - mean) / std.clamp_min(EPS)
    raise ValueError(f"unknown teacher normalisation {method!r}; choose from {', '.join(TEACHER_NORMS)}")


def teacher_logits(scores: torch.Tensor, *, norm: str = "none", temperature: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    """``norm(scale * scores) / temperature`` per row ``(n, n_ways)``: the labels PyLate's Distillation softmaxes.

    >>> teacher_logits(torch.tensor([[4., 3., 2.]]), norm="minmax", temperature=0.5)
    tensor([[2., 1., 0.]])
    """
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"--teacher-temperature must be a finite number > 0, got {temperature!r}")
    return normalize_scores(scale * scores, norm) / temperature


def teacher_targets(scores: torch.Tensor, *, norm: str = "none", temperature: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    """The target distribution ``softmax(teacher_logits(...))`` per row ``(n, n_ways)`` (what the student is pulled to).

    >>> teacher_targets(torch.tensor([[2., 0.]]), norm="minmax", temperature=1.0)
    tensor([[0.7311, 0.2689]])
    """
    return torch.softmax(teacher_logits(scores, norm=norm, temperature=temperature, scale=scale), dim=1)


def fuse_candidate_scores(per_teacher: Sequence[Sequence[Sequence[float]]], *, method: str | None = None, norm: str | None = None,
                          weights: Sequence[float] | None = None, k: float = 60) -> list[list[float]]:
    """Fuse several teachers' scores of the same candidates into one score per candidate.

    ``per_teacher``: ``(teachers, n, n_ways)``, every teacher scoring the same ``n`` rows of
    ``n_ways`` candidates. Each row is one query of a :func:`retrieval.fusion.fuse` run whose
    documents are the candidate positions, so every fusion method and normalisation there applies
    (``method`` None: wsum when ``weights`` are given, else combsum; ``norm`` None: the method's
    default, minmax for combsum/wsum). Returns ``(n, n_ways)`` in candidate order.

    >>> fuse_candidate_scores([[[10., 5., 0.]], [[0.2, 0.9, 0.1]]])       # minmax each, then sum
    [[1.125, 1.5, 0.0]]
    >>> fuse_candidate_scores([[[10., 5., 0.]], [[0.2, 0.9, 0.1]]], method="rrf", k=0)
    [[1.5, 1.5, 0.6666666666666666]]
    """
    if len(per_teacher) < 2:
        raise ValueError(f"fusing needs at least two teachers, got {len(per_teacher)}")
    shapes = {(len(t), tuple(len(r) for r in t)) for t in per_teacher}
    if len(shapes) != 1:
        raise ValueError("every teacher must score the same candidates (one row per query, n_ways each)")
    method = method or ("wsum" if weights is not None else "combsum")
    runs = [{str(i): {str(j): float(s) for j, s in enumerate(row)} for i, row in enumerate(t)} for t in per_teacher]
    fused = fuse(runs, method, weights=weights, norm=norm, k=k)
    return [[fused[str(i)][str(j)] for j in range(len(row))] for i, row in enumerate(per_teacher[0])]


# ---------------------------------------------------------------- teachers


def parse_teacher(spec: str) -> list[tuple[str, float | None]]:
    """``--teacher`` -> ``[(name, weight)]``: one teacher, or the parts of a fusion ``a+b`` / ``a*0.3+b*0.7``.

    >>> parse_teacher("minilm"), parse_teacher("bm25*0.3+minilm*0.7")
    ([('minilm', None)], [('bm25', 0.3), ('minilm', 0.7)])
    """
    return parse_fusion(spec) or [(spec, None)]


def bm25_candidate_scores(queries: Sequence[str], docs: Sequence[Sequence[str]], corpus: Sequence[str], cfg: BM25Config = BM25Config()) -> list[list[float]]:
    """BM25 scores ``(n, n_ways)`` of each query's candidate texts, with IDF and length norm from ``corpus``.

    The index and tokeniser of :func:`encoders.bm25.bm25_search` (:class:`encoders.bm25.BM25Index`), so a candidate scores
    what BM25 retrieval gives it. A candidate text missing from ``corpus`` is added to it.
    """
    texts = list(dict.fromkeys([*corpus, *(d for row in docs for d in row)]))  # unique, corpus order first
    row_of = {t: i for i, t in enumerate(texts)}
    bm25 = BM25Index(texts, cfg)
    index, q_tokens = bm25.bm25, bm25.query_tokens(list(queries))
    vocab = index.vocab_dict
    out = []
    for tokens, row in zip(q_tokens, docs):
        known = [t for t in tokens if t in vocab]
        full = index.get_scores(known) if known else np.zeros(len(texts))  # (len(texts),)
        out.append([float(full[row_of[d]]) for d in row])
    return out


def dense_candidate_scores(model, queries: Sequence[str], docs: Sequence[Sequence[str]]) -> list[list[float]]:
    """Cosine of a SentenceTransformer's query and candidate embeddings ``(n, n_ways)``."""
    enc = DenseEncoder(model, DenseEncoderConfig(similarity="cos"))
    uniq = list(dict.fromkeys(d for row in docs for d in row))
    row_of = {d: i for i, d in enumerate(uniq)}
    d_emb = enc.encode_documents(uniq)  # (U, dim)
    q_emb = enc.encode_queries(list(queries))  # (n, dim)
    return [[float(q_emb[i] @ d_emb[row_of[d]]) for d in row] for i, row in enumerate(docs)]


def colbert_candidate_scores(encoder: ColbertEncoder, queries: Sequence[str], docs: Sequence[Sequence[str]]) -> list[list[float]]:
    """MaxSim of a ColBERT's query and candidate token embeddings ``(n, n_ways)``."""
    uniq = list(dict.fromkeys(d for row in docs for d in row))
    row_of = {d: i for i, d in enumerate(uniq)}
    d_emb = encoder.encode_documents(uniq)  # [(L_d, dim)]
    q_emb = encoder.encode_queries(list(queries))  # [(L_q, dim)]
    out = []
    for q, row in zip(q_emb, docs):
        qt = torch.from_numpy(q)[None]  # (1, L_q, dim)
        out.append([float(maxsim(qt, torch.from_numpy(d_emb[row_of[d]])[None])[0, 0]) for d in row])
    return out


def one_teacher_scores(name: str, queries: Sequence[str], docs: Sequence[Sequence[str]], cfg: TrainConfig, corpus: Sequence[str] | None) -> list[list[float]]:
    """One teacher's raw scores ``(n, n_ways)``: bm25, a PyLate ColBERT folder (MaxSim) or a dense model (cosine)."""
    if name == BM25:
        if corpus is None:
            log.info("teacher bm25: no corpus (JSONL data): IDF from the %d distinct candidate texts", len({d for row in docs for d in row}))
        return bm25_candidate_scores(queries, docs, corpus or [])
    src = resolve_model(name)
    if is_pylate_folder(src.path):
        ccfg = ColbertConfig(query_length=cfg.query_length, doc_length=cfg.doc_length, device=resolve_device(cfg))
        return colbert_candidate_scores(ColbertEncoder(load_colbert(src.path, ccfg), ccfg), queries, docs)
    model, _ = load_dense(name, cfg, cfg.max_length, flag="--teacher")
    return dense_candidate_scores(model, queries, docs)


def teacher_scores(queries: Sequence[str], docs: Sequence[Sequence[str]], cfg: TrainConfig, *, corpus: Sequence[str] | None = None) -> list[list[float]]:
    """The distillation labels ``(n, n_ways)``: ``norm(teacher_scale * s) / T`` of the (fused) teacher scores ``s``.

    ``corpus``: every document text of the training corpus (BM25's IDF); None for JSONL data.
    Logs each teacher's and the final score range so flat or one-hot targets are visible.
    """
    parts = parse_teacher(cfg.teacher)
    per_teacher = []
    for name, _ in parts:
        s = one_teacher_scores(name, queries, docs, cfg, corpus)
        log.info("teacher %s: %s", name, _spread(s))
        per_teacher.append(s)
    if len(parts) == 1:
        raw = per_teacher[0]
    else:
        weights = [w for _, w in parts] if parts[0][1] is not None else None
        raw = fuse_candidate_scores(per_teacher, method=cfg.teacher_fusion, norm=cfg.teacher_fusion_norm, weights=weights)
        log.info("fused teacher %s (%s): %s", cfg.teacher, cfg.teacher_fusion or ("wsum" if weights else "combsum"), _spread(raw))
    logits = teacher_logits(torch.tensor(raw, dtype=torch.float64), norm=cfg.teacher_norm, temperature=cfg.teacher_temperature, scale=cfg.teacher_scale)
    probs = torch.softmax(logits, dim=1)  # (n, n_ways)
    log.info("distillation targets (norm %s, T %g): mean top-1 probability %.3f, mean positive probability %.3f (uniform: %.3f)",
             cfg.teacher_norm, cfg.teacher_temperature, probs.max(dim=1).values.mean(), probs[:, 0].mean(), 1 / probs.shape[1])
    return logits.tolist()


def _spread(scores: Sequence[Sequence[float]]) -> str:
    """``"mean within-query range 0.31 (scores 0.05..0.92)"`` for the log."""
    a = np.asarray(scores, dtype=np.float64)  # (n, n_ways)
    return f"mean within-query range {float((a.max(1) - a.min(1)).mean()):.3g} (scores {a.min():.3g}..{a.max():.3g})"

