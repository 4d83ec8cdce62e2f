"""How a run is executed changes no number beyond a float tolerance stated per kind.

Batch size, shard size, streaming the corpus from disk, and one versus two ranks (two threads
standing in for two torchrun processes, with a real barrier, so the shard hand-off is exercised:
``tests/benchmarks/test_distributed.py`` runs real torchrun in the slow suite). Kinds that encode
nothing (BM25) have no such settings. A per-query metric may differ only for a query whose scores
have a gap smaller than the kind's tolerance near the cutoff (a near tie that float noise can flip).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from benchmarks import models, tasks
from benchmarks.job import Contexts
from benchmarks.pipeline import jobs_for
from retrieval.distributed import Dist
from retrieval.fusion import fuse, parse_fusion
from retrieval.ranking import cut
from tests.invariants.conftest import configs, cutoff, per_query

# Per kind: the largest difference in a score that execution may cause. Batches pad differently (matmul shapes),
# so embeddings move by float noise; FAISS and MaxSim sum in the same order whatever the shard. Fusion has no tolerance
# of its own: its run is exactly the fusion of its components' runs under the same execution (a component's near
# tie that float noise reorders moves an RRF score by a rank step, so the components' tolerances are what bound it).
TOLERANCE = {"dpr": 1e-5, "colbert": 1e-5, "bm25": 0.0}
EXECUTION = {  # setting -> (value, the kinds it applies to)
    "batch_size": (3, ("dpr", "colbert", "fusion")),
    "shard_size": (16, ("dpr", "fusion")),
    "token_shard_size": (16, ("colbert",)),
    "stream": (True, ("dpr",)),
}


def pytest_generate_tests(metafunc):
    if "cfg_name" in metafunc.fixturenames:
        names = [c.name for c in configs("TINY")]
        if "setting" in metafunc.fixturenames:
            pairs = [(n, s) for n in names for s, (_, kinds) in EXECUTION.items() if next(c for c in configs("TINY") if c.name == n).kind in kinds]
            metafunc.parametrize("cfg_name,setting", pairs)
        else:
            metafunc.parametrize("cfg_name", names)


@pytest.fixture
def cfg(cfg_name, all_configs):
    return next(c for c in all_configs if c.name == cfg_name)


def near_tie(run: dict, q: str, c: int, tol: float) -> bool:
    scores = sorted(run.get(q, {}).values(), reverse=True)[: c + 1]
    return any(abs(a - b) <= tol for a, b in zip(scores, scores[1:]))


def assert_same_within(a_res, b_res, a_run, b_run, tol):
    a, b = per_query(a_res), per_query(b_res)
    assert set(a) == set(b)
    for m in a:
        for q, v in a[m].items():
            if v != b[m][q]:
                assert near_tie(a_run, q, cutoff(m), tol) or near_tie(b_run, q, cutoff(m), tol), (m, q, v, b[m][q])
    for q, hits in a_run.items():
        common = set(hits) & set(b_run.get(q, {}))
        assert all(abs(hits[d] - b_run[q][d]) <= max(tol, 1e-12) for d in common), q


def code_flip_bound(*results) -> float:
    """How far a MaxSim score can move when float noise flips the codes of a compressed token store: a flipped token's
    decoded vector moves by up to twice the store's largest reconstruction error (recorded in the result), and a score
    sums one token's similarity per unit-norm query token: ``2 x error x query_length``. 0 for a float16 store."""
    return 2 * max(r.provenance.get("token_max_error", 0.0) for r in results) * max(r.provenance.get("query_length", 0) for r in results)


def tolerance(cfg, base, other, a: dict, b: dict) -> float:
    """The kind's float tolerance; for a compressed token store, the largest score move seen between the two runs.

    Quantization is discontinuous: a batch size that changes a token by one float16 step can flip its code. Such moves
    must stay within :func:`code_flip_bound` and touch few scores (<= 10%); then two documents can only swap places if
    their gap is below twice the largest move, which is the tie tolerance the metrics are held to.
    """
    tol = TOLERANCE[cfg.kind]
    bound = code_flip_bound(base, other)
    if not bound:
        return tol
    moves = [abs(a[q][d] - b[q][d]) for q in a for d in set(a[q]) & set(b.get(q, {}))]
    assert moves and max(moves) <= bound, (max(moves), bound)
    assert sum(m > tol for m in moves) <= 0.1 * len(moves), f"{sum(m > tol for m in moves)} of {len(moves)} scores moved beyond {tol}"
    return max(tol, 2 * max(moves))


def test_execution_settings_change_nothing_beyond_the_tolerance(cfg, setting, runner, synthetic, all_configs):
    value, _ = EXECUTION[setting]
    base, other = runner(cfg, synthetic), runner(cfg, synthetic, **{setting: value})
    if cfg.kind != "fusion":
        a, b = runner.run_of(base), runner.run_of(other)
        assert_same_within(base, other, a, b, tolerance(cfg, base, other, a, b))
        return
    for res, extra in ((base, {}), (other, {setting: value})):  # fusion: exactly fuse(components' runs), whatever the execution
        parts = parse_fusion(cfg.fields["models"][0])
        comps = [runner(component_config(name, all_configs), synthetic, **extra) for name, _ in parts]
        f = res.provenance["fusion"]
        want = cut(fuse([runner.run_of(c) for c in comps], f["method"], weights=f["weights"], norm=f["norm"], k=f["k"] or 60), res.provenance["top_k"])
        got = runner.run_of(res)
        assert {q: list(h) for q, h in got.items()} == {q: list(h) for q, h in want.items() if h or q in got}
        assert all(abs(got[q][d] - want[q][d]) <= 1e-12 for q in got for d in got[q])


def component_config(name: str, all_configs):
    """The base configuration of a fusion component (``bm25``, or the tiny model as ``dpr``)."""
    return next(c for c in all_configs if c.fields.get("models") == (name,) and set(c.fields) <= {"models", "encoder"} and c.fields.get("encoder", "dpr") == "dpr")


@dataclass(frozen=True)
class ThreadRank(Dist):
    """A rank of two threads in one process: the barrier is a real one; rank 0 shares its objects by reference."""

    sync: object = field(default=None, compare=False)

    def barrier(self) -> None:
        self.sync.wait(timeout=120)

    def share(self, obj):
        return obj


def test_two_ranks_give_the_one_rank_numbers(cfg, runner, synthetic, tmp_path):
    retriever0 = models.build(cfg.fields["models"][0], cfg.spec(synthetic, tmp_path, tmp_path))
    if not retriever0.distributed:
        pytest.skip(f"{cfg.name}: indexed and searched on rank 0 only (distributed = False)")
    base = runner(cfg, synthetic, shard_size=16, token_shard_size=16)
    spec = cfg.spec(synthetic, tmp_path / "out", tmp_path / "cache", shard_size=16, token_shard_size=16, save_run=True)
    sync, outcome = threading.Barrier(2), {}

    def rank(r: int) -> None:
        d = ThreadRank(r, 2, r, sync)
        retriever = retriever0 if r == 0 else models.build(cfg.fields["models"][0], spec)
        (job,) = jobs_for(spec)
        outcome[r] = job.evaluate(retriever, Contexts(spec, tasks.cache_root(spec), d), d)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert outcome[1] is None and outcome[0] is not None  # rank 1 encoded its shards; rank 0 searched and scored
    stores = list((tmp_path / "cache" / "retrievers").glob("*/*/corpus*"))
    assert stores and all(len(list(s.glob("*-0000[1-9].npy"))) >= 1 for s in stores)  # several shards: rank 1 had some to encode
    scored = outcome[0]
    b = {m: dict(zip(scored.per_query["qids"], v)) for m, v in scored.per_query.items() if m != "qids"}
    assert b == per_query(base)  # the same shards, the same batches: bitwise the one-rank numbers
