"""Every number stays put when the data is presented differently, and moves only where ties let trec_eval's id order in.

For every retriever configuration the registries define (``conftest.configs``), on synthetic data with
exact duplicates, queries that match nothing and an empty query:

* permuting the corpus lines, the query lines and the qrels rows leaves every per-query metric identical;
* renaming document and query ids by a bijection leaves every per-query metric identical, except at a
  cutoff where the query's run has an exact score tie (trec_eval breaks those by id), and the result
  counts those tied queries honestly;
* renaming the folder changes nothing but the dataset's display name (not even the result key);
* raising ``--top-k`` leaves every metric at a cutoff no deeper than the old k identical;
* a query with no text, and for exhaustive (lexical) kinds a query of words in no document, scores 0;
* the saved run file, rescored, gives the reported per-query numbers;
* files that start with a UTF-8 byte-order mark give the same numbers;
* every judged query is accounted for: scored, or counted as having no text;
* no run is silently short: a query gets every hit it could get (``min(k, documents)``) unless the
  kind's runs are exhaustive, and otherwise the result reports no metric deeper than its shortest run.
"""

from __future__ import annotations

import pytest

from benchmarks import models
from benchmarks.spec import make_spec
from retrieval.beir import load_beir
from retrieval.metrics import score
from retrieval.ranking import first_tie_rank, tied_queries
from tests.invariants.conftest import EMPTY_QUERY, NO_TEXT_QUERY, OOV_QUERIES, copy_folder, cutoff, per_query, permuted, renamed_ids, with_bom


def pytest_generate_tests(metafunc):
    if "cfg" in metafunc.fixturenames:
        from tests.invariants.conftest import configs  # the registries' configurations, named for the test ids
        from encoders.loading import resolve_model  # noqa: F401  (the tiny model is built by a fixture; names only here)

        names = [c.name for c in configs("TINY")]
        metafunc.parametrize("cfg_name", names)


@pytest.fixture
def cfg(cfg_name, all_configs):
    return next(c for c in all_configs if c.name == cfg_name)


def test_permuting_lines_changes_no_per_query_metric(cfg, runner, synthetic, tmp_path_factory):
    base = runner(cfg, synthetic)
    other = runner(cfg, permuted(synthetic, tmp_path_factory.mktemp("perm") / "fruit"))
    assert per_query(other) == per_query(base)
    assert other.metrics == base.metrics


def test_renaming_ids_moves_only_queries_tied_at_the_cutoff(cfg, runner, synthetic, tmp_path_factory):
    base = runner(cfg, synthetic)
    folder, _, qmap = renamed_ids(synthetic, tmp_path_factory.mktemp("ren") / "fruit")
    other = runner(cfg, folder)
    a, b = per_query(base), per_query(other)
    run_a, run_b = runner.run_of(base), runner.run_of(other)
    moved = []
    for metric in a:
        c = cutoff(metric)
        for q, v in a[metric].items():
            if v != b[metric][qmap[q]]:
                tie_a, tie_b = first_tie_rank(run_a.get(q, {})), first_tie_rank(run_b.get(qmap[q], {}))
                assert (tie_a is not None and tie_a <= c) or (tie_b is not None and tie_b <= c), (metric, q, v, b[metric][qmap[q]])
                moved.append((metric, q))
    ties = {k: v for k, v in tied_queries(run_a, [1, 3, 5, 10, 100, 1000]).items() if k in base.provenance["tied_queries"]}
    assert base.provenance["tied_queries"] == ties  # the result's tie count is the run's


def test_renaming_the_folder_changes_nothing_but_the_name(cfg, runner, synthetic, tmp_path_factory):
    base = runner(cfg, synthetic)
    other = runner(cfg, copy_folder(synthetic, tmp_path_factory.mktemp("moved") / "another-name"))
    assert other.dataset == "another-name"
    assert (other.config_key, other.metrics, other.per_query) == (base.config_key, base.metrics, base.per_query)


@pytest.mark.parametrize("k", [10, 100])
def test_raising_top_k_keeps_every_metric_within_the_old_depth(cfg, runner, synthetic, k):
    deep, shallow = runner(cfg, synthetic), runner(cfg, synthetic, top_k=k)
    a, b = per_query(deep), per_query(shallow)
    within = [m for m in a if cutoff(m) <= k]
    assert within and set(b) == set(within)  # nothing deeper than k is reported
    assert {m: a[m] for m in within} == b


def test_a_query_that_matches_nothing_scores_zero(cfg, runner, synthetic):
    r = runner(cfg, synthetic)
    pq = per_query(r)
    assert all(values[EMPTY_QUERY] == 0.0 for values in pq.values())
    assert r.provenance["empty_queries"] == 1
    retriever = models.build(cfg.fields["models"][0], make_spec(**{k: v for k, v in cfg.fields.items()}, device="cpu"))
    if getattr(retriever, "exhaustive", False):  # lexical: words in no document match nothing
        assert all(values[q] == 0.0 for values in pq.values() for q in OOV_QUERIES)
        assert all(not hits for q, hits in runner.run_of(r).items() if q in OOV_QUERIES)


def test_the_saved_run_rescored_gives_the_reported_numbers(cfg, runner, synthetic):
    r = runner(cfg, synthetic)
    qrels = load_beir(synthetic, "test").qrels
    means, pq = score(qrels, runner.run_of(r), depth=r.provenance["top_k"])
    assert pq == per_query(r) and means == r.metrics


def test_files_with_a_byte_order_mark_give_the_same_numbers(cfg, runner, synthetic, tmp_path_factory):
    base = runner(cfg, synthetic)
    other = runner(cfg, with_bom(synthetic, tmp_path_factory.mktemp("bom") / "fruit"))
    assert per_query(other) == per_query(base)


def test_every_judged_query_is_scored_or_counted(cfg, runner, synthetic):
    r = runner(cfg, synthetic)
    judged = {line.split("\t")[0] for line in (synthetic / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    assert NO_TEXT_QUERY in judged and NO_TEXT_QUERY not in r.per_query["qids"]
    assert r.num_queries + r.provenance["queries_without_text"] == len(judged) and set(r.per_query["qids"]) == judged - {NO_TEXT_QUERY}


def test_no_run_is_silently_short(cfg, runner, synthetic):
    r = runner(cfg, synthetic)
    run, k = runner.run_of(r), min(r.provenance["top_k"], r.num_docs)
    retriever = models.build(cfg.fields["models"][0], make_spec(**cfg.fields, device="cpu"))
    short = {q: len(run.get(q, {})) for q in r.per_query["qids"] if q != EMPTY_QUERY and len(run.get(q, {})) < k}
    if getattr(retriever, "exhaustive", False):
        return  # a short run holds every matching document: complete
    depth = r.provenance["search"]["complete_depth"]
    if short:
        assert depth == min(short.values()) and not [m for m in r.metrics if cutoff(m) > depth], (short, depth)
    else:
        assert depth is None
