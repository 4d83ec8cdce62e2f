"""evaluate.py end to end on a slice of real SciFact: tiny random BERT, MiniLM, BM25, caching, resume, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import evaluate
from benchmarks.results import load_results
from tests.conftest import ROOT
from tests.conftest import make_beir


def run_eval(tmp_path, *args):
    out, cache = tmp_path / "out", tmp_path / "cache"
    rc = evaluate.main(["--output", str(out), "--cache-dir", str(cache), "-q", *args])
    return rc, out


def by_model(out):
    return {(r.model, r.encoder): r for r in load_results(out)}


def test_tiny_random_bert_and_bm25_end_to_end(tmp_path, scifact_slice, tiny_bert):
    rc, out = run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", f"bm25,{tiny_bert}", "--pooling", "cls", "--save-run")
    assert rc == 0
    res = by_model(out)
    bm25 = res[("BM25", "bm25")]
    tiny = res[(f"{tiny_bert.name} [cls-pool]", "dpr")]
    assert bm25.num_queries == 30 and bm25.num_docs >= 200
    assert bm25.metrics["ndcg@10"] > 0.5  # real lexical signal on real claims
    assert 0.0 <= tiny.metrics["ndcg@10"] < bm25.metrics["ndcg@10"]  # random weights: far worse than BM25
    prov = tiny.provenance
    assert prov["max_length"] == 512 and prov["dataset_checksum"] and prov["model_revision"].startswith("sha256:")
    assert prov["libraries"]["torch"] and prov["git_commit"] and prov["faiss_factory"] == "Flat"
    header = next(csv.reader(open(out / "leaderboard.csv")))
    assert header[:8] == ["model", "encoder", "dataset", "split", "ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert "| BM25 | bm25 |" in (out / "leaderboard.md").read_text()
    trec = (out / "runs" / f"{tiny.stem}.trec").read_text().splitlines()
    assert len(trec) == 30 * min(1000, tiny.num_docs) and trec[0].split()[1] == "Q0"


def test_minilm_slice_second_run_reencodes_nothing(tmp_path, scifact_slice):
    args = ["--datasets", str(scifact_slice), "--models", "minilm", "--shard-size", "64"]
    rc, out = run_eval(tmp_path, *args)
    assert rc == 0
    first = by_model(out)[("all-MiniLM-L6-v2", "dpr")]
    assert first.timings["corpus_shards_encoded"] == 4  # 200+ docs / 64
    assert 0.6 < first.metrics["ndcg@10"] <= 1.0
    # Result cached: nothing is recomputed, the same file comes back.
    before = (out / f"{first.stem}.json").read_text()
    assert run_eval(tmp_path, *args)[0] == 0
    assert (out / f"{first.stem}.json").read_text() == before
    # Result removed, embeddings cached: scores recomputed from cached embeddings with zero encoding.
    (out / f"{first.stem}.json").unlink()
    assert run_eval(tmp_path, *args)[0] == 0
    again = by_model(out)[("all-MiniLM-L6-v2", "dpr")]
    assert again.timings["corpus_shards_encoded"] == 0
    assert again.metrics == first.metrics


def test_hf_model_pooling_changes_embeddings(tmp_path, scifact_slice, tiny_bert):
    rc, out = run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", str(tiny_bert), "--pooling", "mean")
    rc2, _ = run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", str(tiny_bert), "--pooling", "cls")
    res = by_model(out)
    assert rc == rc2 == 0 and len(res) == 2
    a, b = res[(f"{tiny_bert.name} [mean-pool]", "dpr")], res[(f"{tiny_bert.name} [cls-pool]", "dpr")]
    assert a.metrics != b.metrics


def test_self_hit_rule_from_content_not_name(tmp_path):
    """ArguAna style: query "q" is also document "q" with the same text; the only relevant doc is "d1".

    The rule is read from the data: any folder name gets it, a numbering coincidence does not, and the flag forces it.
    """
    corpus = [{"_id": "q", "text": "apple banana cherry"}, {"_id": "d1", "text": "apple banana"}, {"_id": "d2", "text": "zebra"}]
    queries = [{"_id": "q", "text": "apple banana cherry"}]
    qrels = "query-id\tcorpus-id\tscore\nq\td1\t1\n"
    for name in ("arguana", "ArguAna-beir", "my-copy"):
        make_beir(tmp_path / "data" / name, corpus, queries, qrels)
    coincidence = [{"_id": "q", "text": "zebra stripes"}, {"_id": "d1", "text": "apple banana"}, {"_id": "d2", "text": "zebra"}]
    make_beir(tmp_path / "data" / "numbered", coincidence, queries, qrels)  # same ids, different texts: not the same item
    _, out = run_eval(tmp_path, "--data-dir", str(tmp_path / "data"), "--datasets", "arguana,ArguAna-beir,my-copy,numbered", "--models", "bm25")
    res = {r.dataset: r for r in load_results(out)}
    for name in ("arguana", "ArguAna-beir", "my-copy"):
        assert res[name].metrics["mrr@10"] == pytest.approx(1.0), name  # the self-hit is dropped whatever the folder is called
        prov = res[name].provenance
        assert prov["ignore_identical_ids"] is True and "never judged relevant to themselves" in prov["self_hits"]["reason"]
    assert res["numbered"].provenance["ignore_identical_ids"] is False and "coincide" in res["numbered"].provenance["self_hits"]["reason"]
    _, out2 = run_eval(tmp_path / "off", "--data-dir", str(tmp_path / "data"), "--datasets", "my-copy", "--models", "bm25", "--ignore-identical-ids", "off")
    (forced,) = load_results(out2)
    assert forced.metrics["mrr@10"] == pytest.approx(0.5) and "forced" in forced.provenance["self_hits"]["reason"]  # the query itself ranks first
    assert forced.config_key != res["my-copy"].config_key


@pytest.mark.parametrize("bad", ["malformed", "missing_text", "duplicate", "empty", "qrels_columns", "non_utf8"])
def test_bad_input_errors_and_writes_no_result(tmp_path, bad, capsys):
    root = make_beir(tmp_path / "data" / "toy")
    corpus = root / "corpus.jsonl"
    if bad == "malformed":
        corpus.write_text(corpus.read_text() + '{"_id": "d3", "text": "x"\n')
    elif bad == "missing_text":
        corpus.write_text(corpus.read_text() + '{"_id": "d3", "title": "x"}\n')
    elif bad == "duplicate":
        corpus.write_text(corpus.read_text() + '{"_id": "d1", "text": "again"}\n')
    elif bad == "empty":
        corpus.write_text("")
    elif bad == "qrels_columns":
        (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\nq1\td1\n")
    elif bad == "non_utf8":
        corpus.write_bytes(corpus.read_bytes() + b'{"_id": "d3", "text": "\xff"}\n')
    rc, out = run_eval(tmp_path, "--data-dir", str(tmp_path / "data"), "--datasets", "toy", "--models", "bm25")
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err
    target = "test.tsv" if bad == "qrels_columns" else "corpus.jsonl"
    assert target in err and ("line" in err or bad == "empty")
    assert not list(out.glob("*.json")) if out.exists() else True


_Q = "query-id\tcorpus-id\tscore\n"
BAD_EVAL = [
    # (id, file, its text, line, field, words): issue 17 acceptance 5, each kind through evaluate.py
    ("qrels-fraction", "qrels/test.tsv", _Q + "q1\td1\t1\nq1\td2\t0.9\n", 3, "score", "must be an integer relevance (negative allowed), got '0.9'"),
    ("qrels-inf", "qrels/test.tsv", _Q + "q1\td1\tinf\n", 2, "score", "got 'inf'"),
    ("qrels-nan", "qrels/test.tsv", _Q + "q1\td1\tNaN\n", 2, "score", "got 'NaN'"),
    ("qrels-conflict", "qrels/test.tsv", _Q + "q1\td1\t1\nq1\td1\t0\n", 3, "score", "conflicting duplicate of ('q1', 'd1'): 0 here, 1 on line 2"),
    ("corpus-malformed-json", "corpus.jsonl", '{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "text": \n', 2, None, "malformed JSON"),
    ("corpus-missing-id", "corpus.jsonl", '{"_id": "d1", "text": "alpha"}\n{"text": "beta"}\n', 2, "_id", "is missing"),
    ("corpus-duplicate-id", "corpus.jsonl", '{"_id": "d1", "text": "alpha"}\n{"_id": "d1", "text": "beta"}\n', 2, "_id", "duplicate id 'd1' (first seen on line 1)"),
    ("queries-missing-text", "queries.jsonl", '{"_id": "q1", "text": "alpha?"}\n\n{"_id": "q2"}\n', 3, "text", "is missing"),
]


@pytest.mark.parametrize("rel, text, line, field, words", [b[1:] for b in BAD_EVAL], ids=[b[0] for b in BAD_EVAL])
def test_bad_input_names_file_line_and_field_and_writes_nothing(tmp_path, capsys, rel, text, line, field, words):
    root = make_beir(tmp_path / "data" / "toy")
    (root / rel).write_text(text)
    rc, out = run_eval(tmp_path, "--data-dir", str(tmp_path / "data"), "--datasets", "toy", "--models", "bm25")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"error: {root / rel}, line {line}:" in err and (f"field '{field}'" in err if field else True) and words in err, err
    assert not [p for p in out.rglob("*") if p.is_file()] if out.exists() else True  # no result, no leaderboard


def test_leaderboard_rerender_without_recompute(tmp_path, scifact_slice, capsys):
    rc, out = run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", "bm25")
    (out / "leaderboard.md").unlink()
    (out / "leaderboard.csv").unlink()
    assert evaluate.main(["--leaderboard", str(out)]) == 0
    assert "| BM25 | bm25 |" in capsys.readouterr().out
    assert (out / "leaderboard.md").is_file() and (out / "leaderboard.csv").is_file()


@pytest.fixture(scope="module")
def small_slice(data_dir, tmp_path_factory):
    from tests.conftest import write_slice

    return write_slice(data_dir / "scifact", tmp_path_factory.mktemp("small") / "scifact", n_queries=10, extra_docs=60)


@pytest.mark.slow
def test_sigkill_during_encoding_resumes(tmp_path, small_slice):
    """A real SIGKILL mid-encoding: the rerun encodes only missing shards and gives the scores of a clean run."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    scifact_slice = small_slice
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "--datasets", str(scifact_slice), "--models", "minilm", "--shard-size", "16", "--batch-size", "8", "--output", str(out), "--cache-dir", str(cache), "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    shards = []
    while time.time() < deadline and len(shards) < 2:
        shards = list(cache.glob("retrievers/dpr/*/corpus/shard-*.npy"))
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(shards) and not list(out.glob("*.json"))  # killed before any result was written
    n_total = -(-sum(1 for _ in open(scifact_slice / "corpus.jsonl")) // 16)
    done_before = len(list(cache.glob("retrievers/dpr/*/corpus/shard-*.npy")))
    assert done_before < n_total
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    resumed = load_results(out)[0]
    assert resumed.timings["corpus_shards_encoded"] == n_total - done_before
    assert not list(cache.rglob("*.tmp"))
    clean_out = tmp_path / "clean"
    assert evaluate.main(["--datasets", str(scifact_slice), "--models", "minilm", "--output", str(clean_out), "--cache-dir", str(tmp_path / "cache2"), "-q"]) == 0
    assert load_results(clean_out)[0].metrics == pytest.approx(resumed.metrics, abs=1e-6)


def test_stream_mode_gives_identical_scores(tmp_path, scifact_slice, tiny_bert):
    common = ["--datasets", str(scifact_slice), "--models", str(tiny_bert), "--shard-size", "50"]
    assert run_eval(tmp_path / "a", *common)[0] == 0
    assert run_eval(tmp_path / "b", *common, "--stream")[0] == 0
    (a,), (b,) = load_results(tmp_path / "a" / "out"), load_results(tmp_path / "b" / "out")
    assert a.metrics == b.metrics


def test_disk_corpus_matches_loaded_corpus(scifact_slice):
    from retrieval.beir import DiskCorpus, LazyTexts, doc_text, load_corpus

    mem, disk = load_corpus(scifact_slice / "corpus.jsonl"), DiskCorpus(scifact_slice / "corpus.jsonl")
    assert list(disk) == list(mem) and len(disk) == len(mem)
    ids = list(mem)
    assert all(disk[d] == mem[d] for d in ids[::7])
    assert LazyTexts(disk, ids)[3:6] == [doc_text(mem[d]) for d in ids[3:6]]


def test_ivf_index_built_from_shards_equals_in_memory(tmp_path):
    import numpy as np

    from retrieval import dense
    from retrieval.store import EmbeddingStore

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    store = EmbeddingStore(tmp_path / "s", shard_size=700)
    store.build([str(i) for i in range(3000)], [str(i) for i in range(3000)], lambda t: x[int(t[0]) : int(t[0]) + len(t)], load=False)
    a = dense.build_index(x, "IVF16,Flat")
    b = dense.build_index_from_shards(lambda: store.iter_shards(3000), 3000, 16, "IVF16,Flat")
    q = x[:20] + 0.01
    assert (dense.search(a, q, 10)[1] == dense.search(b, q, 10)[1]).all()


def test_bf16_encoding_is_its_own_result_and_close_to_fp32(tmp_path, scifact_slice, tiny_bert):
    """--dtype bf16 runs end to end, is recorded (name, provenance, cache key) apart from fp32, and its embeddings stay close to fp32's."""
    from sentence_transformers import SentenceTransformer

    from encoders.dpr import DenseEncoder, DenseEncoderConfig

    common = ["--datasets", str(scifact_slice), "--models", str(tiny_bert)]
    assert run_eval(tmp_path, *common)[0] == 0
    assert run_eval(tmp_path, *common, "--dtype", "bf16")[0] == 0
    res = {r.provenance["dtype"]: r for r in load_results(tmp_path / "out")}
    assert set(res) == {"fp32", "bf16"} and res["fp32"].config_key != res["bf16"].config_key
    assert "bf16" in res["bf16"].model and "bf16" not in res["fp32"].model
    texts = ["a claim about protein folding", "the effect of aspirin on heart disease in adults"]
    e32 = DenseEncoder(SentenceTransformer(str(tiny_bert), device="cpu")).encode_documents(texts)
    e16 = DenseEncoder(SentenceTransformer(str(tiny_bert), device="cpu"), DenseEncoderConfig(dtype="bf16")).encode_documents(texts)
    assert e16.dtype == e32.dtype == "float32" and not (e16 == e32).all()
    assert ((e16 * e32).sum(1) > 0.99).all()  # unit vectors: cosine > 0.99


def test_batches_by_tokens_hand_made():
    from encoders.dpr import batches_by_tokens

    order, lengths = [2, 0, 1, 3], [100, 50, 300, 10]  # order is longest first
    assert [list(b) for b in batches_by_tokens(order, lengths, 64, 400)] == [[2], [0, 1, 3]]  # 1 x 300 | 3 x 100
    assert [list(b) for b in batches_by_tokens(order, lengths, 2, None)] == [[2, 0], [1, 3]]
    assert [list(b) for b in batches_by_tokens(order, lengths, 64, 1)] == [[2], [0], [1], [3]]


def test_cpu_token_budget_does_not_change_embeddings(scifact_slice, tiny_bert, monkeypatch):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import encoders.dpr as dpr

    texts = [json.loads(line)["text"] for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()[:40]]
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    from encoders.modernbert import CPU_CHUNK_BYTES

    assert dpr.cpu_token_budget(model) == CPU_CHUNK_BYTES // (model[0].auto_model.config.intermediate_size * 4)
    default = dpr.DenseEncoder(model).encode_documents(texts)
    monkeypatch.setattr(dpr, "cpu_token_budget", lambda m: 64)  # a few texts per forward
    small = dpr.DenseEncoder(model).encode_documents(texts)
    monkeypatch.setattr(dpr, "cpu_token_budget", lambda m: 10**9)  # whole batches of 64
    whole = dpr.DenseEncoder(model).encode_documents(texts)
    np.testing.assert_allclose(small, whole, atol=1e-5)
    np.testing.assert_allclose(default, whole, atol=1e-5)


def test_two_checkpoints_with_one_folder_name_write_two_results(tmp_path, scifact_slice, tiny_bert):
    """Issue 17 #5: two models both called `final` (and two prefixes) never overwrite each other's result file."""
    import shutil

    a, b = tmp_path / "run-a" / "final", tmp_path / "run-b" / "final"
    shutil.copytree(tiny_bert, a)
    shutil.copytree(tiny_bert, b)
    (b / "config.json").write_text((b / "config.json").read_text().replace('"hidden_dropout_prob": 0.1', '"hidden_dropout_prob": 0.2'))
    rc, out = run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", f"{a},{b}", "--top-k", "20")
    assert rc == 0
    for prefix in ("query: ", "q: "):
        assert run_eval(tmp_path, "--datasets", str(scifact_slice), "--models", str(a), "--top-k", "20", "--query-prefix", prefix)[0] == 0
    results = load_results(out)
    assert len(results) == 4 and len({r.stem for r in results}) == 4 and len(list(out.glob("final*__dpr__*.json"))) == 4
    table = (out / "leaderboard.md").read_text()
    assert sum(1 for line in table.splitlines() if line.startswith("| final [")) >= 4  # one row per setting, labelled by key


@pytest.mark.slow
def test_two_concurrent_runs_one_killed_then_a_third(tmp_path, small_slice):
    """Issue 17 #8: two runs share one cache and one output folder; one is SIGKILLed mid-encoding; a third run
    then gives the scores of a clean run, and nothing half-written is left anywhere."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "--datasets", str(small_slice), "--models", "bm25,minilm", "--shard-size", "16", "--batch-size", "8",
           "--output", str(out), "--cache-dir", str(cache), "-q"]
    a = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.glob("retrievers/dpr/*/corpus/shard-*.npy"))) < 1:
        time.sleep(0.05)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    assert b.wait(timeout=600) == 0, b.stderr.read()[-2000:]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
    results = {(r.model, r.dataset): r for r in load_results(out)}
    assert len(results) == 2 and len(list(out.glob("*.json"))) == 2
    assert not list(cache.rglob("*.tmp")) and not list(out.rglob("*.tmp"))
    clean = tmp_path / "clean"
    assert evaluate.main(["--datasets", str(small_slice), "--models", "bm25,minilm", "--output", str(clean), "--cache-dir", str(tmp_path / "cache2"), "-q"]) == 0
    for r in load_results(clean):
        assert results[(r.model, r.dataset)].metrics == pytest.approx(r.metrics, abs=1e-6), r.model
