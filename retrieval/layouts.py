"""Read retrieval sets published in other layouts by converting them once into BEIR folders.

Detected layouts of a local folder:
  * BEIR: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` (used as-is);
  * MLDR (``Shitao/MLDR``): ``corpus.jsonl`` with ``docid``, ``<split>.jsonl`` with ``positive_passages``;
  * LongEmbed (``dwzhu/LongEmbed`` task folder): ``corpus.jsonl``, ``queries.jsonl``, ``qrels.jsonl``;
  * MTEB / CoIR Hugging Face snapshots (CodeSearchNetRetrieval, StackOverflowQA, …): ``corpus``,
    ``queries`` and ``qrels`` files in jsonl or parquet, possibly in subfolders
    (``corpus/*.parquet``, ``qrels/test.jsonl``, ``default/test-*.parquet``).
The converted folder lives in the cache under a hash of the source files, so it is made once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from retrieval.beir import write_beir_folder


def _is_beir(p: Path) -> bool:
    return (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file() and (p / "qrels").is_dir() and any((p / "qrels").glob("*.tsv"))


def _first_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.loads(f.readline())


def detect(folder: Path, split: str = "test") -> str | None:
    folder = Path(folder)
    if _is_beir(folder):
        return "beir"
    if (folder / "corpus.jsonl").is_file() and (folder / f"{split}.jsonl").is_file() and "positive_passages" in _first_json(folder / f"{split}.jsonl"):
        return "mldr"
    if all((folder / n).is_file() for n in ("corpus.jsonl", "queries.jsonl", "qrels.jsonl")):
        return "longembed"
    if _find(folder, "corpus") and _find(folder, "quer") and (_find(folder, "qrels") or _find(folder, split)):
        return "hf"
    return None


def _find(folder: Path, word: str) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".parquet") and word in str(p.relative_to(folder)).lower())


def _read_records(files: list[Path]) -> list[dict]:
    rows: list[dict] = []
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq  # lazy: only MTEB/CoIR parquet snapshots need it

            rows += pq.read_table(f).to_pylist()
        else:
            rows += [json.loads(line) for line in open(f, encoding="utf-8") if line.strip()]
    return rows


def _pick(row: dict, names: tuple[str, ...], what: str, src: Path):
    for n in names:
        if n in row:
            return row[n]
    raise ValueError(f"{src}: no {what} column (looked for {', '.join(names)}; have {', '.join(row)})")


def convert_hf(folder: Path, dst: Path, split: str = "test") -> Path:
    """An MTEB/CoIR-style snapshot (corpus, queries, qrels as jsonl or parquet) -> BEIR folder."""
    corpus_files, query_files = _find(folder, "corpus"), [p for p in _find(folder, "quer") if "qrels" not in str(p).lower()]
    qrels_files = [p for p in _find(folder, "qrels") if split in p.name] or [p for p in _find(folder, split) if p not in corpus_files + query_files]
    if not qrels_files:
        raise FileNotFoundError(f"{folder}: no qrels file for split {split!r}")
    corpus = {}
    for r in _read_records(corpus_files):
        corpus[str(_pick(r, ("_id", "id", "corpus-id", "docid", "doc_id"), "document id", corpus_files[0]))] = {"title": r.get("title") or "", "text": _pick(r, ("text", "content", "code"), "text", corpus_files[0])}
    queries = {str(_pick(r, ("_id", "id", "query-id", "query_id", "qid"), "query id", query_files[0])): _pick(r, ("text", "query"), "query text", query_files[0]) for r in _read_records(query_files)}
    qrels: dict[str, dict[str, int]] = {}
    for r in _read_records(qrels_files):
        q = str(_pick(r, ("query-id", "query_id", "qid"), "query id", qrels_files[0]))
        d = str(_pick(r, ("corpus-id", "corpus_id", "doc_id", "docid"), "document id", qrels_files[0]))
        qrels.setdefault(q, {})[d] = int(r.get("score", 1))
    return write_beir_folder(dst, corpus, queries, qrels, {"converted_from": str(folder), "layout": "hf"})


# ---- long-document sets in their published layouts -------------------------------------------


def convert_mldr(src: Path, dst: Path, split: str = "test") -> Path:
    """MLDR (Chen et al. 2024, ``Shitao/MLDR``) English layout -> BEIR folder.

    ``src/corpus.jsonl``: ``{"docid", "text"}``; ``src/<split>.jsonl``: ``{"query_id", "query",
    "positive_passages": [{"docid", ...}], ...}``.
    """
    corpus = {}
    for lineno, line in enumerate(open(src / "corpus.jsonl", encoding="utf-8"), 1):
        o = json.loads(line)
        corpus[str(o["docid"])] = {"title": "", "text": o["text"]}
    queries, qrels = {}, {}
    for line in open(src / f"{split}.jsonl", encoding="utf-8"):
        o = json.loads(line)
        qid = str(o["query_id"])
        queries[qid] = o["query"]
        qrels[qid] = {str(p["docid"]): 1 for p in o["positive_passages"]}
    return write_beir_folder(dst, corpus, queries, qrels, {"converted_from": str(src), "layout": "mldr"})


def convert_longembed(src: Path, dst: Path) -> Path:
    """A LongEmbed task folder (``dwzhu/LongEmbed``: ``corpus.jsonl`` {doc_id, text}, ``queries.jsonl`` {qid, text},
    ``qrels.jsonl`` {qid, doc_id}) -> BEIR folder."""
    corpus = {str(o["doc_id"]): {"title": "", "text": o["text"]} for o in map(json.loads, open(src / "corpus.jsonl", encoding="utf-8"))}
    queries = {str(o["qid"]): o["text"] for o in map(json.loads, open(src / "queries.jsonl", encoding="utf-8"))}
    qrels: dict = {}
    for o in map(json.loads, open(src / "qrels.jsonl", encoding="utf-8")):
        qrels.setdefault(str(o["qid"]), {})[str(o["doc_id"])] = 1
    return write_beir_folder(dst, corpus, queries, qrels, {"converted_from": str(src), "layout": "longembed"})


def source_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def as_beir(folder: Path, cache_root: Path, split: str = "test") -> Path:
    """``folder`` itself if it is BEIR, else its BEIR conversion in the cache (made once)."""
    folder = Path(folder)
    layout = detect(folder, split)
    if layout == "beir":
        return folder
    if layout is None:
        raise FileNotFoundError(f"{folder}: not a BEIR, MLDR, LongEmbed or MTEB/HF retrieval folder")
    dst = Path(cache_root) / "converted" / f"{folder.name}-{layout}-{source_hash(folder)}"
    if (dst / "generator.json").is_file():
        return dst
    return {"mldr": lambda: convert_mldr(folder, dst, split), "longembed": lambda: convert_longembed(folder, dst), "hf": lambda: convert_hf(folder, dst, split)}[layout]()
