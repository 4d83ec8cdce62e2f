"""The evaluation config: one flat, frozen dataclass; the CLI flags are built from its fields.

Options flow CLI -> EvalConfig -> runner with nothing in between. Each field's ``help``
metadata is its flag's help text; ``flag`` metadata overrides the flag name.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field


def flag_field(default, help: str, **meta):
    """A dataclass field whose ``help`` becomes its CLI flag's help text (see :func:`add_flags`)."""
    return field(default=default, metadata={"help": help, **meta})


_f = flag_field


@dataclass(frozen=True)
class EvalConfig:
    task: str = _f("beir", "what to evaluate: beir | mteb | longdoc | code | all")
    datasets: str | None = _f(None, "comma-separated dataset names or BEIR-format folders (default per task: beir=scifact, code=cosqa, longdoc=passkey/needle/concat suites)")
    mteb_tasks: str | None = _f(None, "mteb: comma-separated MTEB task names, e.g. SciFact,NFCorpus (default: the MTEB names of --datasets, else SciFact); a task whose BEIR folder is found locally (--data-dir, $RETRIEVAL_DATA_DIR, the cache) reads it instead of MTEB's pinned Hugging Face revision")
    data_dir: str | None = _f(None, "folder holding BEIR datasets by name (else $RETRIEVAL_DATA_DIR, the cache, or BEIR's URL)")
    split: str = _f("test", "qrels split to evaluate")
    models: str = _f("bm25,minilm", "comma-separated: bm25, an alias (minilm), a local folder or a Hugging Face hub id")
    encoder: str = _f("dpr", "how a neural model retrieves: dpr (single vector) | colbert (multi-vector, late interaction)")
    pooling: str | None = _f(None, "mean | cls | max for plain Hugging Face encoders (sentence-transformers folders keep their own unless set)")
    similarity: str = _f("cos", "cos (normalised inner product) | dot")
    query_prefix: str = _f("", "text prepended to every query (e.g. 'search_query: ')")
    doc_prefix: str = _f("", "text prepended to every document (e.g. 'search_document: ')")
    max_length: int | None = _f(None, "max tokens per text (default: the model's own max_seq_length)")
    batch_size: int = _f(64, "texts per encoding batch")
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu)")
    dtype: str = _f("fp32", "fp32 | bf16 | fp16 for encoding (fp32 reproduces published numbers)")
    index: str = _f("flat", "dpr: flat | hnsw | ivfpq | any FAISS factory string; colbert: exact (flat means exact) | faiss | plaid")
    query_length: int = _f(32, "colbert: query tokens, padded with [MASK] (query expansion)")
    doc_length: int = _f(300, "colbert: max document tokens (up to 8192 for long documents)")
    doc_handling: str = _f("truncate", "long documents: truncate at --max-length, or maxp (split into max-length windows, score = best window)")
    chunk_stride: int | None = _f(None, "maxp: tokens between window starts (default: the window, no overlap)")
    top_k: int = _f(1000, "hits kept per query (recall@1000 needs 1000)")
    ignore_identical_ids: bool = _f(False, "drop hits whose id equals the query id for every dataset (ArguAna and Quora get it automatically)")
    output: str = _f("results", "folder for result JSONs, run files and the leaderboard")
    cache_dir: str | None = _f(None, "embedding/index cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)")
    stream: bool = _f(False, "large corpora: read documents from disk per shard and build the index shard by shard (memory = index + one shard)")
    shard_size: int = _f(4096, "texts per cached embedding shard: a killed run resumes from the last finished shard")
    token_shard_size: int = _f(1024, "colbert: documents per cached token-embedding shard (the resume and torchrun unit)")
    no_cache: bool = _f(False, "recompute everything: ignore cached results, embeddings and indexes")
    save_run: bool = _f(False, "also write a TREC run file per result")
    attn_backend: str = _f("auto", "ModernBERT attention: auto | sdpa_blocked | sdpa_loop | flash_attn | torch_varlen")
    no_unpadded: bool = _f(False, "run ModernBERT checkpoints with transformers' padded ModernBertModel instead of our unpadded backbone")
    compile: bool = _f(False, "torch.compile the unpadded ModernBERT's MLPs")
    trust_remote_code: bool = _f(False, "allow model code from the checkpoint (and non-safetensors weights)")
    leaderboard: str | None = _f(None, "only re-render the leaderboard from saved results in this folder")
    layout: str = _f("default", "leaderboard layout: default (per dataset) | paper (ModernBERT Table 1 columns + per-task breakdowns, also HTML and PNG)")


def _flag_type(tp):
    """The argparse type for a field annotation like ``int | None``."""
    if isinstance(tp, str):
        tp = eval(tp, {"types": types})  # annotations are strings under `from __future__ import annotations`
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def add_flags(parser: argparse.ArgumentParser, cls=EvalConfig) -> None:
    """One ``--flag-name`` per dataclass field. A bool that defaults to False is a store_true
    switch (``--no-cache``); one that defaults to True gets ``--flag`` / ``--no-flag``."""
    for f in dataclasses.fields(cls):
        name = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        tp = _flag_type(f.type)
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if tp is bool:
            action = argparse.BooleanOptionalAction if f.default else "store_true"
            parser.add_argument(name, dest=f.name, action=action, default=f.default, help=text)
        else:
            parser.add_argument(name, dest=f.name, type=tp, default=f.default, help=text + f" (default: {f.default})".replace("%", "%%"))


def from_args(ns: argparse.Namespace, cls=EvalConfig):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]
