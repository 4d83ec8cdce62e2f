"""TREC run files: ``qid Q0 docid rank score tag``, one line per hit, in trec_eval's order.

Scores are written with ``repr(float)``, the shortest text that reads back as the same float, so a
saved run has exactly the scores (and so the ties, and so the metrics) of the run it was written
from: rounding to 6 decimals would make new ties, which trec_eval then breaks by doc id.

    >>> format_trec({"q1": {"d1": 0.1 + 0.2, "d2": 1.5}}, "bm25")
    'q1 Q0 d2 1 1.5 bm25\\nq1 Q0 d1 2 0.30000000000000004 bm25\\n'
"""

from __future__ import annotations

import math
from pathlib import Path

from retrieval.beir import DataError
from retrieval.io import atomic_write_text
from retrieval.metrics import trec_order

Run = dict[str, dict[str, float]]


def format_trec(run: Run, tag: str) -> str:
    """``run`` as TREC run-file text: each query's hits in trec_eval's order (:func:`~retrieval.metrics.trec_order`), ranks from 1."""
    lines = []
    for qid, docs in run.items():
        lines += [f"{qid} Q0 {did} {rank} {float(score)!r} {tag}" for rank, (did, score) in enumerate(trec_order(docs), start=1)]
    return "\n".join(lines) + ("\n" if lines else "")


def write_trec(run: Run, path: Path, tag: str) -> None:
    """Write ``run`` atomically as a TREC run file (tag = system name, no spaces)."""
    atomic_write_text(path, format_trec(run, tag.replace(" ", "_")))


def read_trec(path: Path) -> Run:
    """A TREC run file -> ``{qid: {docid: score}}``; a malformed line, a non-finite score or a repeated hit is a DataError."""
    run: Run = {}
    first: dict[tuple[str, str], int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise DataError(path, lineno, None, f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}")
            qid, did = parts[0], parts[2]
            try:
                score = float(parts[4])
            except ValueError:
                score = math.nan
            if not math.isfinite(score):
                raise DataError(path, lineno, "score", f"must be a finite number, got {parts[4]!r}")
            if (qid, did) in first:
                raise DataError(path, lineno, "docid", f"duplicate hit {did!r} for query {qid!r} (first on line {first[qid, did]})")
            first[qid, did] = lineno
            run.setdefault(qid, {})[did] = score
    return run
