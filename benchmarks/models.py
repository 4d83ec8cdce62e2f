"""The retriever registry: a ``--models`` entry -> a retriever.

Named retrievers (``bm25``) come from ``NAMED``; any other entry is a model (an alias, a folder
or a hub id) run as the kind ``--encoder`` names (``KINDS``). A new retriever kind registers
itself here: ``register("toy", lambda name, spec: ToyRetriever())`` makes ``--models toy`` work.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from benchmarks.spec import RunSpec
from encoders.retrievers.bm25 import BM25Retriever
from encoders.retrievers.colbert import ColbertRetriever
from encoders.retrievers.dense import DenseRetriever
from encoders.retrievers.protocol import Retriever

Factory = Callable[[str, RunSpec], Retriever]

KINDS: dict[str, Factory] = {
    "dpr": lambda name, spec: DenseRetriever(name, spec.model, spec.encoding, spec.index),
    "colbert": lambda name, spec: ColbertRetriever(name, spec.model, spec.encoding, spec.index),
}
NAMED: dict[str, Factory] = {
    "bm25": lambda name, spec: BM25Retriever(),
}


def register(name: str, factory: Factory) -> None:
    """Make ``--models NAME`` build its retriever with ``factory(name, spec)``."""
    NAMED[name] = factory


def build(name: str, spec: RunSpec) -> Retriever:
    """The retriever for one ``--models`` entry."""
    if name in NAMED:
        return NAMED[name](name, spec)
    kind = spec.model.encoder
    if kind not in KINDS:
        hint = difflib.get_close_matches(kind, KINDS, n=1)
        raise ValueError(f"unknown encoder {kind!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(KINDS)})")
    return KINDS[kind](name, spec)
