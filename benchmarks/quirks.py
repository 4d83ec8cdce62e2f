"""Dataset quirks decided from the data itself, never from a folder name; logged and recorded in every result.

The self-hit rule (ArguAna, Quora): a query is itself a document of the corpus, under the same id,
so it would retrieve itself first. MTEB and Pyserini drop that hit before scoring. We drop it when
the data shows it:

1. some evaluated query ids are also corpus ids, and
2. the qrels never judge a query relevant to its own id, and
3. for most of those queries the document with that id says what the query says (word Jaccard
   >= ``SAME_TEXT``), so the shared ids are the same items and not a numbering coincidence
   (SciFact's numeric query and document ids overlap by chance; its texts do not).

``--ignore-identical-ids on|off`` forces the rule either way; ``auto`` (the default) decides as above.
The other quirks this module counts (judged documents missing from the corpus, queries without
qrels, empty documents) change how a score reads, so they are recorded beside it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from retrieval.beir import doc_text

log = logging.getLogger(__name__)

SAME_TEXT = 0.5  # word Jaccard between a query and the document of the same id
MOST = 0.5  # share of id-sharing queries whose document has the same text


@dataclass(frozen=True)
class SelfHits:
    drop: bool
    reason: str
    shared_ids: int  # evaluated queries whose id is also a corpus id
    same_text: int  # of those, whose document says what the query says


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def jaccard(a: str, b: str) -> float:
    """Word-set overlap of two texts.

    >>> jaccard("What is a cell?", "what is a cell")
    1.0
    """
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


def decide_self_hits(corpus: Mapping, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], force: str = "auto") -> SelfHits:
    """Whether to drop each query's hit on the document with its own id (see the module docstring)."""
    shared = [q for q in queries if q in corpus]
    same = sum(1 for q in shared if max(jaccard(queries[q], doc_text(corpus[q])), jaccard(queries[q], corpus[q].get("text", ""))) >= SAME_TEXT)
    if force in ("on", "off"):
        return SelfHits(force == "on", f"forced by --ignore-identical-ids {force}", len(shared), same)
    if not shared:
        return SelfHits(False, "no query id is a corpus id", 0, 0)
    self_judged = [q for q in shared if qrels.get(q, {}).get(q, 0) > 0]
    if self_judged:
        return SelfHits(False, f"the qrels judge {len(self_judged)} queries relevant to themselves (e.g. {self_judged[0]!r})", len(shared), same)
    if same < MOST * len(shared):
        return SelfHits(False, f"{len(shared)} query ids are corpus ids, but only {same} of those documents match the query text: the ids coincide", len(shared), same)
    return SelfHits(True, f"{len(shared)} query ids are corpus ids, {same} of them the same text, never judged relevant to themselves", len(shared), same)


def data_quirks(corpus: Mapping, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> dict:
    """Counts a reader of the score should know: judged documents missing from the corpus, empty documents."""
    unknown = sum(1 for docs in qrels.values() for d in docs if d not in corpus)
    empty = sum(1 for d in corpus if not doc_text(corpus[d]).strip())
    if empty:
        log.warning("%d documents have no text (title and text empty); they can still be retrieved, at random", empty)
    return {"unknown_qrels_docs": unknown, "empty_documents": empty, "judged_queries": len(qrels)}
