"""``evaluate.py --list datasets|tasks|models|indexes|layouts``: what exists, and where each dataset would be read from here."""

from __future__ import annotations

import os
import typing
from pathlib import Path

from benchmarks import longdoc, models, registry, tasks
from benchmarks.spec import Layout, RunSpec
from encoders.loading import ALIASES
from retrieval import dense, sources
from retrieval.fusion import METHODS, NORMS
from retrieval.multivector import BACKENDS

WHAT = ("datasets", "tasks", "models", "indexes", "layouts")


def _where(name: str, data_dir: str | None) -> str:
    try:
        return f"local: {sources.resolve(name, data_dir, download=False)}"
    except FileNotFoundError:
        if name in sources.BEIR_MD5:
            return "not here; downloaded from BEIR's server when online (md5 checked)"
        return "not here (local only: pass --data-dir or set $RETRIEVAL_DATA_DIR)"


def _local_folders(data_dir: str | None) -> list[Path]:
    roots = [Path(d) for d in (data_dir, os.environ.get(sources.DATA_DIR_ENV)) if d]
    return sorted({p for r in roots if r.is_dir() for p in r.iterdir() if (p / "corpus.jsonl").is_file() and p.name.lower() not in registry.REGISTRY})


def datasets(spec: RunSpec) -> list[str]:
    rows = [f"  {name:<18} {_where(name, spec.data.data_dir)}" + (f"  (MTEB: {s.mteb_name})" if s.mteb_name else "") for name, s in registry.REGISTRY.items()]
    rows += [f"  {p.name:<18} local: {p}" for p in _local_folders(spec.data.data_dir)]
    rows.append(f"  generated (long documents, built in the cache on first use): {', '.join(longdoc.default_datasets())}")
    rows.append("  any BEIR folder path; MLDR, LongEmbed and MTEB/CoIR folders are converted once")
    return ["datasets:"] + rows


def task_list(spec: RunSpec) -> list[str]:
    rows = [f"  {t:<8} default datasets: {', '.join(ds) if ds else '(MTEB task names via --mteb-tasks, default SciFact)'}" for t, ds in tasks.TASK_DATASETS.items()]
    return ["tasks:"] + rows + [f"  all      {' + '.join(tasks.ALL_TASKS)}"]


def model_list(spec: RunSpec) -> list[str]:
    rows = [f"  {name:<10} named retriever" for name in models.NAMED]
    rows += [f"  {alias:<10} alias of {display} (offline)" for alias, (_, display) in ALIASES.items()]
    rows.append(f"  any sentence-transformers / Hugging Face folder or hub id, run as --encoder {' or '.join(models.KINDS)}")
    rows.append("  a+b        fusion of any entries above: bm25+minilm (--fusion rrf, --rrf-k 60), weighted bm25*0.3+minilm*0.7 (wsum);")
    rows.append(f"             --fusion {'|'.join(METHODS)}, --norm {'|'.join(NORMS)}; components reuse their own cached embeddings and runs")
    return ["models:"] + rows


def index_list(spec: RunSpec) -> list[str]:
    return ["indexes:", f"  dpr:     {', '.join(dense.ALIASES)}, or any FAISS factory string (e.g. 'IVF256,PQ48x8')",
            f"  colbert: {', '.join(BACKENDS)} (flat means exact, ivfpq means faiss), or a FAISS factory string for the faiss backend"]


def layout_list(spec: RunSpec) -> list[str]:
    return ["layouts:", *(f"  {name}" for name in typing.get_args(Layout))]


LISTS = {"datasets": datasets, "tasks": task_list, "models": model_list, "indexes": index_list, "layouts": layout_list}


def listing(what: str, spec: RunSpec) -> str:
    return "\n".join(LISTS[what](spec))
