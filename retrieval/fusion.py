"""Fusion of runs: RRF, CombSUM, CombMNZ and a weighted sum, over four score normalisations.

Pure functions over BEIR runs ``{qid: {doc_id: score}}`` (no I/O). The formulas are ranx's
(``ranx.fuse``, Bassani & Romelli, CIKM 2022), and the tests check agreement with ranx 0.3.21 to
1e-9; the differences are deliberate and listed here.

Normalisation, per query, over that query's documents in one run (``NORMS``); every denominator is
floored at ``EPS = 1e-9`` as ranx floors it, so all-equal scores and a single document give 0,
never 0/0 (Montague & Aslam, "Relevance score normalization for metasearch", CIKM 2001):

    minmax   (s - min) / max(max - min, EPS)        ranx "min-max"
    zscore   (s - mean) / max(std, EPS)             ranx "zmuv"; std is the population std (np.std, ddof=0)
    max      s / max(max, EPS)                      ranx "max"; meant for scores >= 0: a query whose
                                                    best score is <= 0 is divided by EPS, as in ranx
    none     s                                      ranx norm=None

Fusion (``METHODS``), per query, over the runs that have that query:

    rrf      sum_r 1 / (k + rank_r(d))              Cormack, Clarke & Buettcher, SIGIR 2009; k = 60
    combsum  sum_r s_r(d)                           Fox & Shaw, TREC-2 1993
    combmnz  |{r : d in r}| * sum_r s_r(d)          Fox & Shaw, TREC-2 1993
    wsum     sum_r w_r * s_r(d)                     ranx "wsum"; weights required, not renormalised

A document a run did not retrieve contributes 0 to that run's term (for zscore, 0 is the mean, not
the bottom: ranx does the same). rrf takes no normalisation: it reads ranks, which every
normaliser above leaves unchanged (each is increasing), so ``norm`` other than "none" is an error.
Only wsum takes weights; ranx has no weighted RRF, CombSUM or CombMNZ, so weights given to them
are an error rather than silently dropped.

Ties. ``rank_r(d)`` counts from 1 by score, descending; documents tied on a score share the mean of
the ranks their group spans (fractional ranking: two documents tied after the first both get rank
2.5), so a fused score never depends on document ids, which would make renaming ids move the
fusion without any tie showing in the fused run. ranx instead ranks equal scores in whatever order
numba's (unstable) quicksort leaves them; it agrees with us wherever a run has no ties. A fused run
is returned in trec_eval's order (:func:`retrieval.metrics.trec_order`: score descending, then doc
id descending), and ``depth`` keeps each query's first ``depth`` documents of it.

Queries. A fused run has the union of the runs' queries; a query present in only some runs is
fused from those (ranx requires every run to have the same queries). wsum does not reweight the
runs that have a query.

    >>> fuse([{"q": {"a": 2.0, "b": 1.0}}, {"q": {"b": 5.0, "c": 1.0}}], "rrf", k=1)
    {'q': {'b': 0.8333333333333333, 'a': 0.5, 'c': 0.3333333333333333}}
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrieval.metrics import trec_order

Run = dict[str, dict[str, float]]
Docs = dict[str, float]  # one query's {doc_id: score}

EPS = 1e-9  # ranx's floor on every normaliser's denominator


def _lookup(registry: dict, name: str, what: str):
    """``registry[name]``; an unknown name is a ValueError listing the valid ones, with a "did you mean"."""
    if name in registry:
        return registry[name]
    hint = difflib.get_close_matches(str(name), list(registry), n=1)
    raise ValueError(f"unknown {what} {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(registry)})")


# ---------------------------------------------------------------- normalisation (one query)


def _minmax(docs: Docs) -> Docs:
    if not docs:
        return {}
    lo, hi = min(docs.values()), max(docs.values())
    den = max(hi - lo, EPS)
    return {d: (s - lo) / den for d, s in docs.items()}


def _zscore(docs: Docs) -> Docs:
    if not docs:
        return {}
    mean = sum(docs.values()) / len(docs)
    std = math.sqrt(sum((s - mean) ** 2 for s in docs.values()) / len(docs))  # population std, as np.std
    den = max(std, EPS)
    return {d: (s - mean) / den for d, s in docs.items()}


def _max(docs: Docs) -> Docs:
    if not docs:
        return {}
    den = max(max(docs.values()), EPS)
    return {d: s / den for d, s in docs.items()}


def _none(docs: Docs) -> Docs:
    return dict(docs)


NORMS: dict[str, Callable[[Docs], Docs]] = {"minmax": _minmax, "zscore": _zscore, "max": _max, "none": _none}


def normalize(run: Run, method: str) -> Run:
    """``run`` with each query's scores normalised by ``method`` (a key of ``NORMS``; formulas in the module docstring).

    Scores become floats; a query with no documents stays empty.

    >>> normalize({"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 7.0}}, "minmax")
    {'q1': {'a': 1.0, 'b': 0.5, 'c': 0.0}, 'q2': {'x': 0.0}}
    """
    norm = _lookup(NORMS, method, "normalisation")
    return {qid: norm({d: float(s) for d, s in docs.items()}) for qid, docs in run.items()}


# ---------------------------------------------------------------- fusion (one query)


def _reciprocal_ranks(docs: Docs, k: float) -> Docs:
    """``{doc: 1 / (k + rank)}``, ranks from 1 by score; tied documents share their group's mean rank.

    >>> _reciprocal_ranks({"a": 3.0, "b": 1.0, "c": 1.0}, 0)
    {'a': 1.0, 'b': 0.4, 'c': 0.4}
    """
    first: dict[float, int] = {}
    size: dict[float, int] = {}
    for rank, s in enumerate(sorted(docs.values(), reverse=True), start=1):
        first.setdefault(s, rank)
        size[s] = size.get(s, 0) + 1
    return {d: 1.0 / (k + first[s] + (size[s] - 1) / 2) for d, s in docs.items()}


def _sum(parts: list[tuple[float, Docs]]) -> Docs:
    """``sum_r w_r * s_r(d)`` over the union of documents (missing: 0), summed in run order as ranx sums."""
    union = dict.fromkeys(d for _, docs in parts for d in docs)
    return {d: sum(w * docs.get(d, 0.0) for w, docs in parts) for d in union}


def _mnz(parts: list[tuple[float, Docs]]) -> Docs:
    """``|{r : d in r}| * sum_r s_r(d)``."""
    union = dict.fromkeys(d for _, docs in parts for d in docs)
    out = {}
    for d in union:
        hits = [docs[d] for _, docs in parts if d in docs]
        out[d] = sum(hits) * len(hits)
    return out


@dataclass(frozen=True)
class Method:
    combine: Callable[[list[tuple[float, Docs]]], Docs]  # one query: (weight, contributions) of each run that has it
    on_ranks: bool  # contributions are 1 / (k + rank) (rrf), else normalised scores
    weighted: bool  # weights required (wsum); refused otherwise
    default_norm: str


METHODS: dict[str, Method] = {
    "rrf": Method(_sum, on_ranks=True, weighted=False, default_norm="none"),
    "combsum": Method(_sum, on_ranks=False, weighted=False, default_norm="minmax"),
    "combmnz": Method(_mnz, on_ranks=False, weighted=False, default_norm="minmax"),
    "wsum": Method(_sum, on_ranks=False, weighted=True, default_norm="minmax"),
}


def fuse(
    runs: Sequence[Run],
    method: str = "rrf",
    *,
    weights: Sequence[float] | None = None,
    norm: str | None = None,
    k: float = 60,
    depth: int | None = None,
) -> Run:
    """Fuse two or more runs into one (formulas, tie order and query rules in the module docstring).

    ``method``: a key of ``METHODS``. ``norm``: a key of ``NORMS``; None takes the method's default
    ("none" for rrf, "minmax" for the others, as ranx's "min-max"). ``weights``: one per run, for
    wsum only. ``k``: RRF's rank offset (Cormack et al.'s 60), used by rrf only. ``depth``: keep
    each query's ``depth`` best fused documents (None: all). Returns each query's documents in
    :func:`~retrieval.metrics.trec_order`.

    >>> a = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    >>> b = {"q": {"d2": 4.0, "d4": 0.0}}
    >>> fuse([a, b], "combsum")
    {'q': {'d2': 1.5, 'd1': 1.0, 'd4': 0.0, 'd3': 0.0}}
    >>> fuse([a, b], "wsum", weights=[0.25, 0.75], depth=2)
    {'q': {'d2': 0.875, 'd1': 0.25}}
    """
    spec = _lookup(METHODS, method, "fusion method")
    if len(runs) < 2:
        raise ValueError(f"fusion needs at least two runs, got {len(runs)}")
    norm = spec.default_norm if norm is None else norm
    _lookup(NORMS, norm, "normalisation")
    if spec.on_ranks and norm != "none":
        raise ValueError(f"{method} fuses ranks, which normalisation does not change; norm must be 'none' (or None), got {norm!r}")
    if spec.weighted:
        if weights is None:
            raise ValueError(f"{method} needs weights, one per run ({len(runs)})")
        if len(weights) != len(runs):
            raise ValueError(f"{method}: {len(weights)} weights for {len(runs)} runs")
        if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights):
            raise ValueError(f"{method}: weights must be finite numbers, got {list(weights)}")
    elif weights is not None:
        raise ValueError(f"{method} takes no weights (ranx has no weighted {method}); use method='wsum' for a weighted sum")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise ValueError(f"depth must be a positive int or None, got {depth!r}")
    for i, run in enumerate(runs):
        for qid, docs in run.items():
            bad = next((d for d, s in docs.items() if not math.isfinite(s)), None)
            if bad is not None:
                raise ValueError(f"run {i}, query {qid!r}: score of {bad!r} is not finite ({docs[bad]!r})")

    if spec.on_ranks:
        parts = [{qid: _reciprocal_ranks(docs, k) for qid, docs in run.items()} for run in runs]
    else:
        parts = [normalize(run, norm) for run in runs]
    w = [float(x) for x in weights] if spec.weighted else [1.0] * len(runs)
    fused: Run = {}
    for qid in dict.fromkeys(q for run in runs for q in run):  # union, in first-seen order
        docs = spec.combine([(w[i], part[qid]) for i, part in enumerate(parts) if qid in part])
        fused[qid] = dict(trec_order(docs)[:depth])
    return fused


# ---------------------------------------------------------------- the CLI's fusion syntax


def parse_fusion(spec: str) -> list[tuple[str, float | None]] | None:
    """``"bm25+minilm"`` -> ``[("bm25", None), ("minilm", None)]``; ``"bm25*0.3+minilm*0.7"`` -> weights 0.3, 0.7.

    None for a spec that is not a fusion: one without '+', or one that names an existing path (a
    local model folder may contain '+'; the whole spec is checked, not its parts). Names may hold
    '/', '-', '.', ':' (folders, hub ids); a weight follows the last '*' of its part and must be a
    finite float. Either every part has a weight or none does; a name may appear once. Errors are
    ValueErrors naming the part.

    >>> parse_fusion("bm25*0.3+org/model-v1.5*0.7")
    [('bm25', 0.3), ('org/model-v1.5', 0.7)]
    >>> parse_fusion("minilm") is None
    True
    """
    if "+" not in spec or os.path.exists(spec):
        return None
    parsed: list[tuple[str, float | None]] = []
    for part in (p.strip() for p in spec.split("+")):
        name, star, text = part.rpartition("*")
        if not star:
            name, weight = part, None
        else:
            try:
                weight = float(text)
            except ValueError:
                raise ValueError(f"fusion {spec!r}: weight of {part!r} is not a number: {text!r}") from None
            if not math.isfinite(weight):
                raise ValueError(f"fusion {spec!r}: weight of {part!r} must be finite, got {text!r}")
        name = name.strip()
        if not name:
            raise ValueError(f"fusion {spec!r}: part {part!r} has no model name")
        if name in (n for n, _ in parsed):
            raise ValueError(f"fusion {spec!r}: {name!r} appears twice")
        parsed.append((name, weight))
    if len({w is None for _, w in parsed}) > 1:
        raise ValueError(f"fusion {spec!r}: give every part a weight or none (unweighted: {[n for n, w in parsed if w is None]})")
    return parsed
