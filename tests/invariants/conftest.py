"""The invariant suite's fixtures: tiny synthetic data with real ties, and every retriever configuration the registries define.

Configurations come from the product's registries, never from a list kept here: every kind of
``benchmarks.models.KINDS`` (built on a tiny random BERT) and ``NAMED``, fusion, each under every
value of its ``benchmarks.models.PATHS`` settings (index backends, document handling, BM25 padding,
fusion methods). A kind or backend registered there runs under every invariant at once.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks import models
from benchmarks.pipeline import run
from benchmarks.results import Result
from benchmarks.spec import SECTIONS, make_spec
from encoders.retrievers.colbert import backend_for
from encoders.retrievers.fusion import resolve as resolve_fusion
from retrieval.runfile import read_trec

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango", "nut", "olive", "pear", "quince",
         "rasp", "sloe", "tangelo", "ugli", "vanilla", "walnut", "yam", "zest", "acorn", "basil", "clove", "dill"]
OOV_QUERIES = {"q-oov": "zebra", "q-unknown": "unknownword"}  # words in no document: they match nothing
EMPTY_QUERY = "q-empty"
NO_TEXT_QUERY = "q-no-text"
# Settings some path values need to run their own code on tiny data (MaxP needs documents longer than a window).
PATH_EXTRAS = {("doc_handling", "maxp"): {"max_length": 8, "chunk_stride": 4}}


def synthetic_rows(seed: int = 0) -> tuple[list[dict], list[dict], dict[str, list[tuple[str, str, int]]]]:
    """``(corpus rows, query rows, {split: qrels rows})``: 72 documents (8 exact duplicates of others under new ids,
    so exact score ties are real), 14 word queries, two queries matching no document, one empty query; test and train qrels."""
    rng = random.Random(seed)
    docs = []
    for i in range(64):
        words = rng.sample(WORDS, rng.randint(3, 9))
        docs.append({"_id": f"doc{i}", "title": words[0] if i % 3 == 0 else "", "text": " ".join(words[1:] if i % 3 == 0 else words)})
    for j in range(8):  # duplicates under other ids: ties that only trec_eval's id order breaks
        src = docs[rng.randrange(64)]
        docs.append({"_id": f"dup{j}", "title": src["title"], "text": src["text"]})
    queries, qrels = [], {"test": [], "train": []}
    for i in range(14):
        words = rng.sample(WORDS, rng.randint(1, 3))
        queries.append({"_id": f"q{i}", "text": " ".join(words)})
        rel = [d for d in docs if set(words) & set((d["title"] + " " + d["text"]).split())]
        for d in rng.sample(rel, min(len(rel), rng.randint(1, 4))):
            qrels["test" if i < 10 else "train"].append((f"q{i}", d["_id"], rng.randint(1, 2)))
    for qid, text in OOV_QUERIES.items():
        queries.append({"_id": qid, "text": text})
        qrels["test"].append((qid, "doc3", 1))  # judged relevant to a document it shares no word with
    queries.append({"_id": EMPTY_QUERY, "text": ""})
    qrels["test"].append((EMPTY_QUERY, "doc5", 1))
    qrels["test"].append((NO_TEXT_QUERY, "doc7", 1))  # judged, but no line in queries.jsonl: dropped, and counted
    return docs, queries, qrels


def write_folder(folder: Path, docs: list[dict], queries: list[dict], qrels: dict[str, list[tuple[str, str, int]]]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, rows in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows))
    return folder


def permuted(src: Path, dst: Path, seed: int = 1) -> Path:
    """A copy of a BEIR folder with its corpus lines, query lines and qrels rows shuffled."""
    rng = random.Random(seed)
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        lines = (src / name).read_text().splitlines(keepends=True)
        rng.shuffle(lines)
        (dst / name).write_text("".join(lines))
    for q in (src / "qrels").glob("*.tsv"):
        head, *rows = q.read_text().splitlines(keepends=True)
        rng.shuffle(rows)
        (dst / "qrels" / q.name).write_text(head + "".join(rows))
    return dst


def with_bom(src: Path, dst: Path) -> Path:
    """A copy whose corpus, queries and qrels files start with a UTF-8 byte-order mark (as Windows tools save them)."""
    shutil.copytree(src, dst)
    for f in [dst / "corpus.jsonl", dst / "queries.jsonl", *(dst / "qrels").glob("*.tsv")]:
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    return dst


def renamed_ids(src: Path, dst: Path, seed: int = 2) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A copy whose document and query ids are renamed by a random bijection (consistently in the qrels);
    returns the folder and the (old -> new) maps for documents and queries."""
    rng = random.Random(seed)
    docs = [json.loads(x) for x in (src / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(x) for x in (src / "queries.jsonl").read_text().splitlines()]
    new_docs = [f"D{i:03d}" for i in range(len(docs))]
    new_queries = [f"Q{i:03d}" for i in range(len(queries))]
    rng.shuffle(new_docs)
    rng.shuffle(new_queries)
    dmap = {d["_id"]: n for d, n in zip(docs, new_docs)}
    qmap = {q["_id"]: n for q, n in zip(queries, new_queries)}
    qrels = {}
    for f in (src / "qrels").glob("*.tsv"):
        rows = [line.split("\t") for line in f.read_text().splitlines()[1:]]
        qrels[f.stem] = [(qmap.get(q, q), dmap[d], int(s)) for q, d, s in rows]  # a judged query with no text keeps its id
    write_folder(dst, [{**d, "_id": dmap[d["_id"]]} for d in docs], [{**q, "_id": qmap[q["_id"]]} for q in queries], qrels)
    return dst, dmap, qmap


@dataclass(frozen=True)
class Config:
    """One retriever configuration: a --models entry and the run-spec fields that pick its code path."""

    name: str
    kind: str
    fields: dict = field(default_factory=dict, hash=False, compare=False)

    def spec(self, folder: Path, out: Path, cache: Path, **overrides):
        return make_spec(**{"datasets": (str(folder),), "output": str(out), "cache_dir": str(cache), "device": "cpu", "batch_size": 8,
                            "doc_length": 48, "query_length": 16, **self.fields, **overrides})


def configs(tiny: Path) -> list[Config]:
    """Every kind the registries know under every value of its PATHS settings (see the module docstring)."""
    out = []

    def add(kind: str, base: dict) -> None:
        out.append(Config(kind, kind, base))
        spec = make_spec(**base)
        for setting, values in models.PATHS.get(kind, {}).items():
            default = spec_value(spec, setting)
            if kind == "fusion" and setting == "fusion":
                default = resolve_fusion(spec.fusion, None)[0]  # an unweighted entry fuses with rrf unless told otherwise
            for v in values:
                if v == default or (setting == "index" and kind == "colbert" and backend_for(str(v))[0] == backend_for(str(default))[0]):
                    continue  # the default path is the base configuration
                fields = {**base, setting: v, **PATH_EXTRAS.get((setting, v), {})}
                if kind == "fusion" and setting == "fusion" and v == "wsum":
                    fields["models"] = (f"bm25*0.3+{tiny}*0.7",)  # wsum fuses a weighted entry
                out.append(Config(f"{kind}-{setting}={v}", kind, fields))

    for name in models.NAMED:
        add(models.build(name, make_spec(models=(name,))).kind, {"models": (name,)})
    for kind in models.KINDS:
        add(kind, {"models": (str(tiny),), "encoder": kind})
    add("fusion", {"models": (f"bm25+{tiny}",)})
    return out


def spec_value(spec, name: str):
    """A run-spec field's value by its flat name, whatever its section (None: no such field)."""
    for section in SECTIONS:
        obj = getattr(spec, section)
        if name in {f.name for f in dataclasses.fields(obj)}:
            return getattr(obj, name)
    return None


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Path:
    docs, queries, qrels = synthetic_rows()
    return write_folder(tmp_path_factory.mktemp("inv-data") / "fruit", docs, queries, qrels)


@pytest.fixture(scope="session")
def all_configs(tiny_bert) -> list[Config]:
    return configs(tiny_bert)


class Runner:
    """Evaluates (config, folder, overrides) once per session through the pipeline: the invariants compare runs and share baselines.

    Each evaluation writes into a fresh output folder with ``--save-run``; ``runner.run_of(result)`` reads its run back.
    """

    def __init__(self, root: Path):
        self.root, self.memo, self.outs = root, {}, {}

    def __call__(self, cfg: Config, folder: Path, *, cache: str = "cache", **overrides) -> Result:
        key = (cfg.name, str(folder), cache, tuple(sorted(overrides.items())))
        if key not in self.memo:
            out = self.root / "out" / f"{len(self.memo):03d}"
            (r,) = run(cfg.spec(folder, out, self.root / cache, save_run=True, **overrides))
            self.memo[key], self.outs[r.config_key + r.created_at] = r, out
        return self.memo[key]

    def out_of(self, r: Result) -> Path:
        return self.outs[r.config_key + r.created_at]

    def run_of(self, r: Result) -> dict[str, dict[str, float]]:
        return read_trec(self.out_of(r) / "runs" / f"{r.stem}.trec")


def per_query(r: Result) -> dict[str, dict[str, float]]:
    """``{metric: {qid: value}}`` from a result's compact per-query scores."""
    qids = r.per_query["qids"]
    return {m: dict(zip(qids, v)) for m, v in r.per_query.items() if m != "qids"}


def cutoff(metric: str) -> int:
    return int(metric.split("@")[1])


@pytest.fixture(scope="session")
def runner(tmp_path_factory) -> Runner:
    return Runner(tmp_path_factory.mktemp("inv-runs"))


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
