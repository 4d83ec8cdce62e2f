"""The retriever registry: a ``--models`` entry -> a retriever.

Named retrievers (``bm25``) come from ``NAMED``; an entry with ``+`` is a fusion of entries
(``bm25+minilm``, weighted ``bm25*0.3+minilm*0.7``; :mod:`encoders.retrievers.fusion`), each
component built here exactly as it is built alone; any other entry is a model (an alias, a folder
or a hub id) run as the kind ``--encoder`` names (``KINDS``). A new retriever kind registers
itself here: ``register("toy", lambda name, spec: ToyRetriever())`` makes ``--models toy`` work,
and ``--models toy+bm25`` too.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import get_args

from benchmarks.spec import RunSpec
from encoders.bm25 import BM25Config
from encoders.loading import memory_hash
from encoders.retrievers.bm25 import BM25Retriever
from encoders.retrievers.colbert import ColbertRetriever
from encoders.retrievers.config import DocHandling
from encoders.retrievers.dense import DenseRetriever
from encoders.retrievers.fusion import Component, FusionRetriever
from encoders.retrievers.protocol import Retriever
from retrieval import dense as dense_index
from retrieval import fusion as fusion_methods
from retrieval import multivector, token_codec
from retrieval.fusion import parse_fusion

Factory = Callable[[str, RunSpec], Retriever]

# The settings that send a kind down another code path (another index backend, another document handling, BM25's
# padding, another fusion method), read from the registries that define them. The invariant suite (tests/invariants)
# runs every kind of KINDS and NAMED, and fusion, under each of these values: a backend added to one of these
# registries is checked the moment it is registered, and a kind with no entry here still runs under its defaults.
PATHS: dict[str, dict[str, tuple]] = {
    "bm25": {"bm25_pad": (False, True)},
    "dpr": {"index": dense_index.ALIASES, "doc_handling": get_args(DocHandling)},
    "colbert": {"index": tuple(multivector.BACKENDS), "token_store": tuple(token_codec.FORMS)},
    "fusion": {"fusion": tuple(fusion_methods.METHODS)},
}

KINDS: dict[str, Factory] = {
    "dpr": lambda name, spec: DenseRetriever(name, spec.model, spec.encoding, spec.index),
    "colbert": lambda name, spec: ColbertRetriever(name, spec.model, spec.encoding, spec.index),
}
# A model held in memory (the Python API, a Trainer's evaluator) as a retriever of each kind: keyed by the hash of its
# weights and configuration, used as it is (encoders.loading.memory_hash).
IN_MEMORY: dict[str, Callable[[object, str | None, RunSpec], Retriever]] = {
    "dpr": lambda obj, name, spec: DenseRetriever(memory_key(obj), spec.model, spec.encoding, spec.index, loaded=obj, display=name),
    "colbert": lambda obj, name, spec: ColbertRetriever(memory_key(obj), spec.model, spec.encoding, spec.index, loaded=obj, display=name),
}


def memory_key(obj) -> str:
    """The ``--models`` entry a model held in memory stands under: its hash (``mem-sha256:...``)."""
    return memory_hash(obj)


NAMED: dict[str, Factory] = {
    "bm25": lambda name, spec: BM25Retriever(BM25Config(pad_unmatched=spec.index.bm25_pad)),
}


def register(name: str, factory: Factory) -> None:
    """Make ``--models NAME`` build its retriever with ``factory(name, spec)``."""
    NAMED[name] = factory


def build(name: str, spec: RunSpec, built: dict[str, Retriever] | None = None) -> Retriever:
    """The retriever for one ``--models`` entry.

    ``built`` (entry -> retriever, filled in here) shares retrievers between entries: with
    ``--models minilm,bm25+minilm`` MiniLM is loaded once, and the fusion's component is the
    plain entry's retriever.
    """
    built = {} if built is None else built
    if name not in built:
        parts = parse_fusion(name)
        built[name] = _single(name, spec) if parts is None else _fusion(name, parts, spec, built)
    return built[name]


def _single(name: str, spec: RunSpec) -> Retriever:
    if name in NAMED:
        return NAMED[name](name, spec)
    kind = spec.model.encoder
    if kind not in KINDS:
        hint = difflib.get_close_matches(kind, KINDS, n=1)
        raise ValueError(f"unknown encoder {kind!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(KINDS)})")
    return KINDS[kind](name, spec)


def _fusion(entry: str, parts: list[tuple[str, float | None]], spec: RunSpec, built: dict[str, Retriever]) -> FusionRetriever:
    components = []
    for name, weight in parts:
        try:
            retriever = build(name, spec, built)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"--models {entry!r}, component {name!r}: {e}") from None
        except ValueError as e:
            raise ValueError(f"--models {entry!r}, component {name!r}: {e}") from None
        components.append(Component(retriever, spec.settings(retriever.kind), weight))  # the settings that key it alone key it in the fusion
    return FusionRetriever(entry, components, spec.fusion)
