"""The run spec: validated once, and every setting that can change a score is in the key of the kinds it applies to."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from benchmarks.spec import SECTIONS, RunSpec, make_spec
from encoders.retrievers.config import applies
from retrieval.flags import _flag_type

# Fields that never change a number, and why. Anything else must be keyed for the kinds it names.
NOT_KEYED = {
    "datasets": "iterated over: each dataset is keyed by its own checksum",
    "mteb_tasks": "iterated over: each task is keyed by its data",
    "data_dir": "where to look; the data found is keyed by its checksum",
    "models": "iterated over: each retriever is keyed by its identity",
    "output": "where results go",
    "cache_dir": "where caches go",
    "no_cache": "recompute, same numbers",
    "save_run": "an extra file, same numbers",
    "leaderboard": "render only",
    "layout": "render only",
    "fusion": "resolved per --models a+b entry (the default depends on its weights) and keyed, resolved, in the fusion retriever's identity",
    "norm": "resolved per fusion entry (the method's default) and keyed in the fusion retriever's identity",
    "rrf_k": "keyed in the fusion retriever's identity when the method is rrf, the only one that reads it",
    "baseline": "render only: significance markers in the tables",
    "test": "render only",
    "correction": "render only",
    "alpha": "render only",
    "permutations": "render only",
    "bootstrap": "render only",
    "stats_seed": "render only",
    "ci": "render only: ± beside scores in the tables",
}
KINDS = ("bm25", "dpr", "colbert", "toy")


def other_value(field, hint, value):
    """A different valid value for a field."""
    tp = _flag_type(hint)
    if typing.get_origin(tp) is typing.Literal:
        return next(v for v in typing.get_args(tp) if v != value)
    if tp is bool or isinstance(value, bool):
        return not value
    if tp is int or isinstance(value, int):
        return (value or 0) + 7
    if field.name == "index":
        return "hnsw"
    return (value or "") + "x"


@pytest.mark.parametrize("section,name", [(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)])
def test_every_setting_is_keyed_where_it_applies(section, name):
    cls = SECTIONS[section]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    kinds = field.metadata["kinds"]
    if kinds == ():
        assert name in NOT_KEYED, f"{section}.{name} is keyed for no kind: say why in NOT_KEYED, or give it kinds"
        return
    assert name not in NOT_KEYED
    base = RunSpec()
    changed = base.replace(**{name: other_value(field, typing.get_type_hints(cls)[name], getattr(getattr(base, section), name))})
    for kind in KINDS:
        assert (base.settings(kind) != changed.settings(kind)) == applies(field, kind), (section, name, kind)


def test_bm25_key_ignores_neural_settings_and_dpr_does_not():
    a, b = make_spec(), make_spec(pooling="cls", dtype="bf16", index="hnsw")
    assert a.settings("bm25") == b.settings("bm25")
    assert a.settings("dpr") != b.settings("dpr")


def test_validated_once_with_valid_values_listed():
    with pytest.raises(ValueError, match=r"did you mean 'colbert'\? \(valid: dpr, colbert\)"):
        make_spec(encoder="colbrt")
    with pytest.raises(ValueError, match="tuple of strings"):
        make_spec(models="bm25")
    with pytest.raises(ValueError, match="unknown --index 'hnswx' for --encoder colbert"):
        make_spec(encoder="colbert", index="hnswx")
    with pytest.raises(TypeError, match="no field 'bogus'"):
        make_spec(bogus=1)


def test_cli_flags_come_from_the_fields(capsys):
    import evaluate

    p = evaluate.parser()
    spec = RunSpec(**{s: getattr(evaluate.spec_from_args(p.parse_args(["--models", "bm25, minilm", "--no-unpadded", "--top-k", "10"])), s) for s in SECTIONS})
    assert spec.model.models == ("bm25", "minilm") and spec.model.unpadded is False and spec.index.top_k == 10
    with pytest.raises(SystemExit):
        p.parse_args(["--task", "beri"])
    assert "did you mean 'beir'" in capsys.readouterr().err
    titles = [g.title for g in p._action_groups]
    assert {"data", "model", "encoding", "index and search", "output"} <= set(titles)
