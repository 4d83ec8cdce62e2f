"""FusionRetriever on toy components: defaults resolved, identity, own contexts, cached component runs, self-hits."""

from __future__ import annotations

import typing

import pytest

from benchmarks.job import drop_self_hits  # the job's rule, which the job hands the fusion in its context
from encoders.retrievers.config import FusionConfig, FusionMethod, FusionNorm
from encoders.retrievers.fusion import Component, FusionRetriever, resolve
from encoders.retrievers.protocol import IndexContext, Retriever
from retrieval.fusion import METHODS, NORMS, fuse


class Fixed:
    """A retriever whose run is given; counts its searches."""

    distributed = False

    def __init__(self, kind: str, name: str, run: dict, ident: dict | None = None, distributed: bool = False):
        self.kind, self.name, self.run, self.ident, self.distributed = kind, name, run, ident or {}, distributed
        self.searches, self.indexed_in = 0, []

    def identity(self):
        return self.ident

    def provenance(self):
        return {}

    def index(self, corpus, ctx):
        self.indexed_in.append(ctx.cache)

    def search(self, queries, k):
        self.searches += 1
        return {q: dict(list(self.run[q].items())[:k]) for q in queries}


A = {"q1": {"d1": 0.1 + 0.2, "d2": 0.2, "d3": 0.1}, "q2": {"d4": 5.0, "d1": 1.0}}
B = {"q1": {"d2": 9.0, "d4": 3.0, "d1": 1.0}, "q2": {"d1": 2.0, "d3": 1.0}}
QUERIES = {"q1": "one", "q2": "two"}
CORPUS = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(1, 5)}


def contexts(tmp_path, drop=None):
    """An index context whose ``context_for`` gives each component ``<tmp>/<kind>``, as the pipeline's Contexts would."""
    def own(r: Retriever) -> IndexContext:
        return IndexContext(cache=tmp_path / r.kind, corpus_checksum="c", drop_self_hits=drop)
    return IndexContext(cache=tmp_path / "fusion", corpus_checksum="c", context_for=own, drop_self_hits=drop)


def fusion(a, b, cfg=FusionConfig(), weights=(None, None), settings=({}, {})):
    return FusionRetriever("a+b", [Component(a, settings[0], weights[0]), Component(b, settings[1], weights[1])], cfg)


def test_config_choices_are_the_library_names():
    assert typing.get_args(FusionMethod) == tuple(METHODS) and typing.get_args(FusionNorm) == tuple(NORMS)


def test_defaults_resolve_and_only_resolved_values_key():
    assert resolve(FusionConfig(), None) == ("rrf", "none", 60)
    assert resolve(FusionConfig(), [0.3, 0.7]) == ("wsum", "minmax", None)
    assert resolve(FusionConfig(fusion="combmnz"), None) == ("combmnz", "minmax", None)
    assert resolve(FusionConfig(fusion="combsum", rrf_k=5), None) == ("combsum", "minmax", None)  # k is rrf's alone
    a, b = Fixed("x", "X", A), Fixed("y", "Y", B)
    assert fusion(a, b).identity() == fusion(a, b, FusionConfig(fusion="rrf", norm="none", rrf_k=60)).identity()
    assert fusion(a, b, FusionConfig(fusion="combsum")).identity() == fusion(a, b, FusionConfig(fusion="combsum", norm="minmax", rrf_k=1)).identity()
    for msg, cfg, w in [("rrf takes no weights", FusionConfig(fusion="rrf"), (1.0, 2.0)), ("wsum needs weights", FusionConfig(fusion="wsum"), (None, None)),
                        ("norm must be 'none'", FusionConfig(norm="zscore"), (None, None)), ("k must be", FusionConfig(rrf_k=-1), (None, None))]:
        with pytest.raises(ValueError, match=f"--models 'a\\+b': .*{msg}"):
            fusion(a, b, cfg, w)


def test_identity_name_and_distributed():
    a, b = Fixed("x", "X", A, {"rev": 1}), Fixed("y", "Y", B, distributed=True)
    f = fusion(a, b, settings=({"s": 1}, {"s": 2}))
    assert f.kind == "fusion" and f.name == "X+Y (rrf)" and f.distributed and f.components == (a, b)
    assert f.identity() == {"method": "rrf", "norm": "none", "k": 60, "weights": None,
                            "components": [{"kind": "x", "identity": {"rev": 1}, "settings": {"s": 1}}, {"kind": "y", "identity": {}, "settings": {"s": 2}}]}
    assert fusion(a, b, settings=({"s": 1}, {"s": 3})).identity() != f.identity()  # a component's setting keys the fusion
    assert fusion(a, b, weights=(0.3, 0.7)).name == "X*0.3+Y*0.7 (wsum)"
    assert fusion(a, b, FusionConfig(fusion="combsum", norm="zscore")).name == "X+Y (combsum, zscore)"
    assert fusion(a, b, FusionConfig(rrf_k=10)).name == "X+Y (rrf, k=10)"
    assert not fusion(Fixed("x", "X", A), Fixed("y", "Y", B)).distributed


def test_components_index_in_their_own_folders_and_runs_are_cached(tmp_path):
    a, b = Fixed("x", "X", A), Fixed("y", "Y", B)
    f = fusion(a, b)
    f.index(CORPUS, contexts(tmp_path))
    assert a.indexed_in == [tmp_path / "x"] and b.indexed_in == [tmp_path / "y"]
    assert f.search(QUERIES, 3) == fuse([A, B], "rrf", depth=3)
    assert (a.searches, b.searches) == (1, 1) and len(list((tmp_path / "x").glob("run-*.json"))) == 1
    assert f.timings["component_runs_searched"] == 2

    g = fusion(a, b, FusionConfig(fusion="combsum", norm="zscore"))  # another method: the components' runs come from their folders
    g.index(CORPUS, contexts(tmp_path))
    assert g.search(QUERIES, 3) == fuse([A, B], "combsum", norm="zscore", depth=3)  # exact: 0.1 + 0.2 read back as written
    assert (a.searches, b.searches) == (1, 1) and g.timings == {"component_runs_searched": 0, "component_runs_cached": 2, "fuse_s": g.timings["fuse_s"]}
    g.search(QUERIES, 2)  # another depth is another run
    assert (a.searches, b.searches) == (2, 2)
    g.search({"q1": "one"}, 3)  # other queries too
    assert (a.searches, b.searches) == (3, 3)


def test_other_settings_are_other_cached_runs(tmp_path):
    a, b = Fixed("x", "X", A), Fixed("y", "Y", B)
    for settings in (({"index.index": "flat"}, {}), ({"index.index": "hnsw"}, {})):  # the folder is shared across --index; the run is not
        f = fusion(a, b, settings=settings)
        f.index(CORPUS, contexts(tmp_path))
        f.search(QUERIES, 3)
    assert (a.searches, b.searches) == (2, 1)


def test_self_hits_are_dropped_from_each_component_before_fusing(tmp_path):
    """The job asks k + 1 and keeps k: each component's tie-closed run loses its self-hit before fusing, so a self-hit never sets a minmax bound."""
    a = Fixed("x", "X", {"d1": {"d1": 10.0, "d2": 2.0, "d3": 1.0, "d4": 0.5}})
    b = Fixed("y", "Y", {"d1": {"d3": 4.0, "d1": 3.5, "d2": 1.0, "d4": 0.0}})
    f = fusion(a, b, FusionConfig(fusion="combsum"))
    f.index(CORPUS, contexts(tmp_path, drop=drop_self_hits))
    k = 2
    got = drop_self_hits(f.search({"d1": "text of d1"}, k + 1), k)  # what BeirJob does
    own = [{q: {d: s for d, s in hits.items() if d != q} for q, hits in r.search({"d1": ""}, k + 1).items()} for r in (a, b)]  # top 3, self-hit out
    assert got == drop_self_hits(fuse(own, "combsum", depth=k + 1), k) == {"d1": {"d3": 1.0, "d2": 1.0}}  # d10.0 never set a's minmax top


def test_fusion_needs_the_pipeline_contexts(tmp_path):
    with pytest.raises(ValueError, match="context_for"):
        fusion(Fixed("x", "X", A), Fixed("y", "Y", B)).index({}, IndexContext(cache=tmp_path, corpus_checksum="c"))
