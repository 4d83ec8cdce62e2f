"""A number computed by other code never passes as current; a change elsewhere recomputes nothing.

The result key holds :func:`retrieval.codeid.fingerprint` of the job's and the retriever's modules and
everything they import (``benchmarks.pipeline.code_of``); a retriever's cache folder holds its own
module's. "Changing" a module here salts its fingerprint, as an edit of its code would (the
fingerprint reads the syntax tree, so docstrings and comments never count).
"""

from __future__ import annotations

import pytest

from benchmarks import models
from benchmarks.beir_job import BeirJob
from benchmarks.pipeline import result_key
from retrieval import codeid
from tests.invariants.conftest import configs


def pytest_generate_tests(metafunc):
    if "cfg_name" in metafunc.fixturenames:
        metafunc.parametrize("cfg_name", [c.name for c in configs("TINY")])


@pytest.fixture
def cfg(cfg_name, all_configs):
    return next(c for c in all_configs if c.name == cfg_name)


def salt(monkeypatch, target):
    """Make ``target`` (a file) count as changed code: its fingerprint gets a salt."""
    real = codeid._parse

    def parse(path):
        h, imports = real(path)
        return (h + "-changed" if path.resolve() == target.resolve() else h), imports

    monkeypatch.setattr(codeid, "_parse", parse)


def test_changing_any_module_a_number_depends_on_changes_its_key(cfg, synthetic, tmp_path, monkeypatch):
    spec = cfg.spec(synthetic, tmp_path, tmp_path)
    retriever = models.build(cfg.fields["models"][0], spec)
    job = BeirJob("fruit", synthetic, split="test", task="beir", top_k=1000)
    base = result_key(job, retriever, spec)
    todo = [retriever, *getattr(retriever, "components", ())]
    modules = codeid.closure(type(job).__module__, *(type(r).__module__ for r in todo))
    assert "retrieval.metrics" in modules and type(retriever).__module__ in modules
    for name, path in modules.items():
        with monkeypatch.context() as m:
            salt(m, path)
            assert result_key(job, retriever, spec) != base, f"{name} changed, key of {cfg.name} did not"
    assert result_key(job, retriever, spec) == base


def test_a_changed_scoring_module_is_recomputed_and_other_changes_reencode_nothing(runner, synthetic, all_configs, monkeypatch, tmp_path):
    """End to end: after a change to BM25's code the pipeline recomputes BM25 (never serves the cached number);
    a change to the dense encoder re-encodes its corpus; a change to the leaderboard re-encodes nothing."""
    from benchmarks.pipeline import run

    bm25, dense = (next(c for c in all_configs if c.name == n) for n in ("bm25", "dpr"))
    spec = dense.spec(synthetic, tmp_path / "out", tmp_path / "cache")
    (first,) = run(bm25.spec(synthetic, tmp_path / "out", tmp_path / "cache"))
    (again,) = run(bm25.spec(synthetic, tmp_path / "out", tmp_path / "cache"))
    assert again.created_at == first.created_at  # unchanged code: the cached result
    with monkeypatch.context() as m:
        salt(m, codeid.module_path("encoders.bm25"))
        (changed,) = run(bm25.spec(synthetic, tmp_path / "out", tmp_path / "cache"))
    assert changed.config_key != first.config_key and changed.provenance["code"] != first.provenance["code"]

    (d1,) = run(spec)
    assert d1.timings["corpus_shards_encoded"] == 1
    with monkeypatch.context() as m:
        salt(m, codeid.module_path("benchmarks.leaderboard"))
        (d2,) = run(spec.replace(top_k=500))
    assert d2.timings["corpus_shards_encoded"] == 0  # the leaderboard is not encoder code
    with monkeypatch.context() as m:
        salt(m, codeid.module_path("encoders.dpr"))
        (d3,) = run(spec)
    assert d3.timings["corpus_shards_encoded"] == 1 and d3.config_key != d1.config_key  # other encoder code: encoded again


def test_docstrings_and_comments_are_not_code(tmp_path):
    a = tmp_path / "a"
    (a / "retrieval").mkdir(parents=True)
    (a / "retrieval" / "m.py").write_text('"""doc"""\nX = 1  # one\n\ndef f():\n    """f"""\n    return X\n')
    first = codeid.fingerprint("retrieval.m", root=a)
    (a / "retrieval" / "m.py").write_text('"""other doc"""\n# a comment\nX = 1\n\n\ndef f():\n    """g"""\n    return X\n')
    assert codeid.fingerprint("retrieval.m", root=a) == first
    (a / "retrieval" / "m.py").write_text('"""doc"""\nX = 2\n\ndef f():\n    return X\n')
    assert codeid.fingerprint("retrieval.m", root=a) != first
