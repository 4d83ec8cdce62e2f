"""torchrun: sharded encoding gives the single-process scores; shards resume; DDP training step with gathered negatives;
several nodes need one shared cache folder, checked at start."""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import torch

from benchmarks.results import load_results
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc, *args, script="evaluate.py", env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(ROOT / script), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


# encoder -> (flags, cache subfolder, store glob, shard file pattern)
SHARDED = {
    "dpr": (["--shard-size", "32"], "retrievers/dpr", "*/corpus", "shard-{:05d}.npy"),
    "colbert": (["--encoder", "colbert", "--index", "exact", "--doc-length", "64", "--token-shard-size", "32"], "retrievers/colbert", "*/corpus", "tokens-{:05d}.npy"),
}


@pytest.mark.slow
@pytest.mark.parametrize("encoder", list(SHARDED))
def test_torchrun_two_ranks_equal_single_process_and_resume(tmp_path, scifact_slice, tiny_bert, encoder):
    """Each rank encodes its corpus shards, rank 0 searches: same scores as one process; one lost shard is all that is re-encoded."""
    flags, sub, pattern, shard = SHARDED[encoder]
    common = ["--datasets", str(scifact_slice), "--models", f"{tiny_bert}", *flags, "-q"]
    p = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *common, "--output", str(tmp_path / "single"), "--cache-dir", str(tmp_path / "c1")], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    p = torchrun(2, *common, "--output", str(tmp_path / "ddp"), "--cache-dir", str(tmp_path / "c2"))
    assert p.returncode == 0, p.stderr[-3000:]
    (a,), (b,) = load_results(tmp_path / "single"), load_results(tmp_path / "ddp")
    assert a.encoder == b.encoder == encoder
    assert b.provenance["world_size"] == 2 and a.provenance["world_size"] == 1
    for m in a.metrics:
        assert abs(a.metrics[m] - b.metrics[m]) <= 1e-6, m
    # Resume by shard: drop one shard (rank 1's) and the result; the rerun re-encodes exactly that shard.
    (store,) = (tmp_path / "c2" / sub).glob(pattern)
    n_shards = len(list(store.glob(shard.replace("{:05d}", "*"))))
    assert n_shards >= 7 and b.timings["corpus_shards_encoded"] == n_shards
    (store / shard.format(1)).unlink()
    (store / "meta.json").unlink()
    shutil.rmtree(tmp_path / "ddp")
    p = torchrun(2, *common, "--output", str(tmp_path / "ddp"), "--cache-dir", str(tmp_path / "c2"))
    assert p.returncode == 0, p.stderr[-3000:]
    (c,) = load_results(tmp_path / "ddp")
    assert c.timings["corpus_shards_encoded"] == 1
    assert c.metrics == b.metrics


def torchrun_nodes(node_args, timeout=600):
    """One torchrun agent per entry of ``node_args`` (each: that node's evaluate.py arguments), all on this machine,
    started together and joined through c10d rendezvous, one process each -> ([(returncode, stdout, stderr)], seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rdzv = [f"--nnodes={len(node_args)}", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", f"--rdzv-id={uuid.uuid4().hex}"]
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *rdzv, str(ROOT / "evaluate.py"), *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in node_args]
    try:
        outs = [p.communicate(timeout=max(1.0, timeout - (time.monotonic() - start))) for p in procs]
    finally:
        for p in procs:  # a hung agent (a failed assertion above) must not outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs)], time.monotonic() - start


@pytest.mark.slow
def test_torchrun_two_nodes_share_the_cache_folder_or_fail_together(tmp_path, scifact_slice, tiny_bert):
    """Two torchrun agents as two nodes (c10d rendezvous): one shared --cache-dir gives the one-process scores;
    a --cache-dir per node (no shared filesystem) fails on both nodes at start, promptly, with the reason."""
    common = ["--datasets", str(scifact_slice), "--models", f"{tiny_bert}", "--shard-size", "32", "-q"]
    p = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *common, "--output", str(tmp_path / "single"), "--cache-dir", str(tmp_path / "c1")], check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    node = [*common, "--output", str(tmp_path / "nodes"), "--cache-dir", str(tmp_path / "c2")]  # rank 0, on whichever node, writes the results
    ran, _ = torchrun_nodes([node, node])
    for rc, _, err in ran:
        assert rc == 0, err[-3000:]
    (a,), (b,) = load_results(tmp_path / "single"), load_results(tmp_path / "nodes")
    assert b.provenance["world_size"] == 2 and a.provenance["world_size"] == 1
    for m in a.metrics:
        assert abs(a.metrics[m] - b.metrics[m]) <= 1e-6, m
    print(f"nDCG@10: one process {a.metrics['ndcg@10']:.6f}, two nodes {b.metrics['ndcg@10']:.6f}")
    assert not list((tmp_path / "c2").glob(".shared-folder-check-*"))  # rank 0 removed its marker
    # Two nodes without a shared filesystem: each sees its own cache folder.
    ran, took = torchrun_nodes([[*common, "--output", str(tmp_path / f"out{i}"), "--cache-dir", str(tmp_path / f"node{i}")] for i in (0, 1)], timeout=120)
    for rc, _, err in ran:
        assert rc != 0, err[-3000:]
        assert "the cache folder is not shared by all 2 ranks" in err and "could not read rank 0's marker file" in err, err[-3000:]
        assert "on several nodes, --cache-dir must be one folder on a filesystem every node mounts" in err, err[-3000:]
        assert str(tmp_path / "node0") in err and str(tmp_path / "node1") in err, err[-3000:]
    print(f"two nodes, no shared cache folder: both failed in {took:.1f} s:\n" + next(line for line in ran[0][2].splitlines() if "SharedFolderError:" in line))
    assert took < 60
    for i in (0, 1):
        assert not (tmp_path / f"node{i}" / "retrievers").exists()  # failed before any encoding
        assert not list((tmp_path / f"node{i}").glob(".shared-folder-check-*"))


CHECK_SCRIPT = """
import sys
import torch.distributed as dist
from retrieval.distributed import Dist, SharedFolderError, check_shared_folder

rank = int(sys.argv[1])
dist.init_process_group("gloo", rank=rank, world_size=2)
for folder in sys.argv[2:]:  # one check per folder, in order: a line each, "ok" or the error
    try:
        check_shared_folder(Dist(rank, 2), folder)
        print("ok", flush=True)
    except SharedFolderError as e:
        print(f"error: {e}", flush=True)
dist.destroy_process_group()
"""


def test_shared_folder_check_passes_on_one_folder_and_fails_on_every_rank_otherwise(tmp_path):
    """Two gloo processes: one cache folder for both passes; a folder each raises on both ranks, naming ranks, hosts and folders."""
    shared, mine, theirs = tmp_path / "shared", tmp_path / "rank0", tmp_path / "rank1"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "PYTHONPATH": str(ROOT)}
    folders = {0: (shared, mine), 1: (shared, theirs)}
    procs = [subprocess.Popen([sys.executable, "-c", CHECK_SCRIPT, str(r), *map(str, folders[r])], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=60) for p in procs]  # neither rank may hang
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    reports = [o.splitlines() for o, _ in outs]
    assert [r[0] for r in reports] == ["ok", "ok"]
    host = socket.gethostname()
    for r in reports:
        err = r[1]
        assert err.startswith(f"error: the cache folder is not shared by all 2 ranks: rank 1 (host {host}) could not read rank 0's marker file {theirs}/.shared-folder-check-"), err
        assert "(FileNotFoundError: No such file or directory)" in err
        assert f"rank 0 (host {host})" not in err.split(". The cache folder")[0]  # rank 0 read its own file: only rank 1 failed
        assert f"The cache folder as each rank sees it: rank 0 (host {host}) {mine}, rank 1 (host {host}) {theirs}." in err
        assert err.endswith("Ranks exchange encoded shards through the cache folder: on several nodes, --cache-dir must be one folder on a filesystem every node mounts (NFS, Lustre, ...).")
    assert reports[0][1] == reports[1][1]  # one message on every rank
    assert not list(shared.iterdir()) and not list(mine.iterdir())  # rank 0 removed its markers
    assert not theirs.exists()


def _ddp_step(rank, world, port, queries, docs, model_dir, out):
    import torch.distributed as dist
    from sentence_transformers import SentenceTransformer, losses

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir), device="cpu")
    loss_fn = losses.MultipleNegativesRankingLoss(model, gather_across_devices=True)
    # find_unused_parameters: BERT's pooler gets no gradient; without it DDP's bucket never completes and nothing is averaged.
    ddp = torch.nn.parallel.DistributedDataParallel(loss_fn, find_unused_parameters=True)
    per = len(queries) // world
    q, d = queries[rank * per : (rank + 1) * per], docs[rank * per : (rank + 1) * per]
    feats = [model.tokenize(q), model.tokenize(d)]
    loss = ddp(feats, None)
    loss.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    losses_all = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(losses_all, loss.detach().reshape(1))
    if rank == 0:
        torch.save({"loss": torch.cat(losses_all).mean().item(), "params": {k: v.detach().clone() for k, v in model.state_dict().items()}}, out)
    # Skip interpreter teardown: with torch 2.11, freeing the DDP reducer after the gloo group is gone can
    # deadlock (the reducer's destructor joins gloo's thread while holding the GIL that thread waits for).
    os._exit(0)


def test_ddp_training_step_with_gathered_negatives_equals_single_process(tmp_path, tiny_bert):
    """Two gloo processes, each with half the batch, gather negatives: loss and updated weights equal one process on the whole batch."""
    import torch.multiprocessing as mp
    from sentence_transformers import SentenceTransformer, losses

    queries = [f"query number {i} about topic {i % 3}" for i in range(8)]
    docs = [f"document {i} answering topic {i % 3} in detail" for i in range(8)]
    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    model.save(str(tmp_path / "st"))  # both runs start from the same saved weights (incl. pooling)
    model = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    loss = losses.MultipleNegativesRankingLoss(model)([model.tokenize(queries), model.tokenize(docs)], None)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    port = free_port()
    out = tmp_path / "ddp.pt"
    mp.start_processes(_ddp_step, args=(2, port, queries, docs, tmp_path / "st", out), nprocs=2, join=True, start_method="spawn")
    got = torch.load(out)
    assert got["loss"] == pytest.approx(loss.item(), abs=1e-5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(got["params"][k], v, atol=1e-5, rtol=1e-4)


def _train_cli(tmp_path, model, data, out, batch, extra=()):
    return ["--model", str(model), "--train-data", str(data), "--output", str(out), "--batch-size", str(batch), "--max-steps", "2",
            "--save-steps", "100", "--max-length", "32", "--lr", "1e-3", "--logging-steps", "1", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
            "--mine-count", "1", "-q", *extra]


@pytest.mark.slow
def test_torchrun_train_gathers_negatives_and_matches_one_process(tmp_path, tiny_bert):
    """`torchrun --nproc-per-node 2 train.py` (2 x 4 examples, negatives gathered) logs the same first-step loss as one process with batch 8."""
    import json

    from transformers import BertModel

    model = tmp_path / "nodrop"  # no dropout: the two runs must see the same forward pass
    shutil.copytree(tiny_bert, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(cfg))
    BertModel.from_pretrained(model)  # still loads
    data = tmp_path / "pairs.jsonl"
    with data.open("w") as f:  # distinct texts: the no-duplicates sampler keeps the order, so step 1 sees the same 8 examples
        for i in range(16):
            f.write(json.dumps({"query": f"question {i} about subject {i * 7 % 11}", "positive": f"answer text {i} on subject {i * 7 % 11}", "negatives": [f"unrelated passage {i} number {i * 3}"]}) + "\n")
    p = subprocess.run([sys.executable, str(ROOT / "train.py"), *_train_cli(tmp_path, model, data, tmp_path / "one", 8)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    p = torchrun(2, *_train_cli(tmp_path, model, data, tmp_path / "two", 4), script="train.py")
    assert p.returncode == 0, p.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "train_result.json").read_text()) for d in ("one", "two"))
    assert two["world_size"] == 2 and two["gather_across_devices"] and two["global_batch_size"] == one["global_batch_size"] == 8
    assert two["steps"] == one["steps"] == 2
    # Without gathering, each rank ranks its 4 queries against 8 documents instead of 16: 1.39 vs 2.01 here.
    assert two["loss_log"][0] == pytest.approx(one["loss_log"][0], abs=1e-5)
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(tmp_path / "two"), device="cpu")  # rank 0 saved a loadable model


STALL_SCRIPT = '''
import os, pathlib, sys, time
sys.path.insert(0, {root!r})
from benchmarks import models
from benchmarks.pipeline import run
from benchmarks.spec import make_spec


class Slow:
    """Rank 0 alone searches, and takes 5 s: longer than the 2 s process-group timeout."""

    kind, name, distributed = "slow", "Slow", False

    def identity(self):
        return {{}}

    def provenance(self):
        return {{}}

    def index(self, corpus, ctx):
        self.ids = list(corpus)

    def search(self, queries, k):
        time.sleep(5)
        return {{q: {{d: 1.0 for d in self.ids[:k]}} for q in queries}}


models.register("slow", lambda name, spec: Slow())
out = run(make_spec(datasets=({data!r},), models=("slow",), output={out!r}, cache_dir={cache!r}))
# One file per rank: two ranks printing to one shared pipe at the same moment interleave their words.
line = f"{{len(out)}} {{type(out[0]).__name__}} {{out[0].metrics['ndcg@10']}}"
pathlib.Path({report!r}, f"rank-{{os.environ['RANK']}}.txt").write_text(line)
'''


def test_single_rank_stall_outlives_the_collective_timeout(tmp_path, scifact_slice):
    """Rank 0 works alone for 5 s under a 2 s process-group timeout: the other rank waits on the store, not a collective."""
    script = tmp_path / "stall.py"
    script.write_text(STALL_SCRIPT.format(root=str(ROOT), data=str(scifact_slice), out=str(tmp_path / "out"), cache=str(tmp_path / "cache"), report=str(tmp_path)))
    p = torchrun(2, script=str(script), env_extra={"RETRIEVAL_DIST_TIMEOUT_S": "2"})
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [(tmp_path / f"rank-{r}.txt").read_text() for r in (0, 1)]
    assert lines[0] == lines[1] and lines[0].startswith("1 Result "), lines  # both ranks return the same Results
