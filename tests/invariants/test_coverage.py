"""The suite covers every registered retriever kind, every path setting and every output: a new one runs under every invariant, or fails here."""

from __future__ import annotations

from benchmarks import models
from benchmarks.spec import make_spec
from tests.invariants.conftest import configs
from tests.invariants.test_execution import EXECUTION, TOLERANCE
from tests.invariants.test_keys import LIBRARIES


def test_every_registered_kind_and_path_value_is_a_configuration(monkeypatch):
    cfgs = configs("TINY")
    kinds = {c.kind for c in cfgs}
    assert {models.build(n, make_spec(models=(n,))).kind for n in models.NAMED} | set(models.KINDS) | {"fusion"} <= kinds
    for kind, settings in models.PATHS.items():
        for setting, values in settings.items():
            for v in values:
                assert any(c.kind == kind and (c.fields.get(setting, v) == v) for c in cfgs), (kind, setting, v)

    class Toy:  # a kind registered at run time joins the configurations at once
        kind, name, distributed = "toy", "Toy", False

    monkeypatch.setitem(models.NAMED, "toy", lambda name, spec: Toy())
    assert "toy" in {c.kind for c in configs("TINY")}


def test_every_kind_states_its_tolerance_and_libraries():
    kinds = set(models.KINDS) | {models.build(n, make_spec(models=(n,))).kind for n in models.NAMED}
    assert kinds <= set(TOLERANCE) and kinds <= set(LIBRARIES)
    assert {k for _, ks in EXECUTION.values() for k in ks} <= set(TOLERANCE) | {"fusion"}
