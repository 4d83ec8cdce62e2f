"""Fusion does not depend on the order of its components, and a run fused with itself keeps its order."""

from __future__ import annotations

import pytest

from retrieval.fusion import METHODS, NORMS, fuse
from retrieval.metrics import trec_order
from tests.invariants.conftest import Config, per_query


def test_component_order_changes_nothing(runner, synthetic, tiny_bert):
    for entry, swapped in [(f"bm25+{tiny_bert}", f"{tiny_bert}+bm25"), (f"bm25*0.3+{tiny_bert}*0.7", f"{tiny_bert}*0.7+bm25*0.3")]:
        for method in ([None, "combsum", "combmnz"] if "*" not in entry else [None]):
            extra = {} if method is None else {"fusion": method}
            a = runner(Config(f"f:{entry}:{method}", "fusion", {"models": (entry,), **extra}), synthetic)
            b = runner(Config(f"f:{swapped}:{method}", "fusion", {"models": (swapped,), **extra}), synthetic)
            assert per_query(a) == per_query(b), (entry, method)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_run_fused_with_itself_keeps_its_order(method, runner, synthetic, all_configs):
    """Every method and normalisation is monotone in one run's scores: fusing a run with itself reorders nothing
    (equal scores stay equal; trec_eval's id order then ranks them as it ranked the run)."""
    for cfg in all_configs:
        if cfg.kind == "fusion":
            continue
        run = runner.run_of(runner(cfg, synthetic))
        norms = ["none"] if METHODS[method].on_ranks else list(NORMS)
        for norm in norms:
            if norm == "max" and any(s <= 0 for hits in run.values() for s in hits.values()):
                continue  # max divides by the best score, meant for scores > 0 (retrieval.fusion)
            fused = fuse([run, run], method, norm=norm, weights=[0.4, 0.6] if METHODS[method].weighted else None)
            for q, hits in run.items():
                assert [d for d, _ in trec_order(fused.get(q, {}))] == [d for d, _ in trec_order(hits)], (cfg.name, method, norm, q)
