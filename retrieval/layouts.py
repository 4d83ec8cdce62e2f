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
import itertools
from pathlib import Path

from retrieval.beir import DataError, Qrels, QrelsBuilder, UniqueIds, check_id, iter_json_objects, parse_relevance, validated_records, write_beir_folder
from retrieval.locks import file_lock


def _is_beir(p: Path) -> bool:
    return (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file() and (p / "qrels").is_dir() and any((p / "qrels").glob("*.tsv"))


def _first_json(path: Path) -> dict:
    """The first object of a JSONL file (blank lines skipped); {} when it has none."""
    return next((obj for _, _, obj in iter_json_objects(path)), {})


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


# ---- every converter reads through retrieval.beir's validating reader -----------------------


def _rows(path: Path):
    """``((number, offset, object) rows, unit)`` of a jsonl file (numbered by line, blank lines skipped) or a parquet file (by row)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # lazy: only MTEB/CoIR parquet snapshots need it

        return ((i, None, row) for i, row in enumerate(pq.read_table(path).to_pylist(), start=1)), "row"
    return iter_json_objects(path), "line"


def _column(path: Path, n: int, row: dict, names: tuple[str, ...], unit: str) -> str:
    """The first of ``names`` that ``row`` has; none is a DataError naming them all."""
    for name in names:
        if name in row:
            return name
    raise DataError(path, n, "|".join(names), f"is missing (have {', '.join(row) or 'no fields'})", unit=unit)


def _records(files: list[Path], id_names: tuple[str, ...], text_names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{id: record}`` over ``files`` (the id and text columns picked from each file's first row), ids unique across files.

    Each record has ``"text"`` and the ``optional`` fields ("" when absent). Errors name file, line (row) and field.
    """
    ids, out = UniqueIds(), {}
    for f in files:
        rows, unit = _rows(f)
        first = next(rows, None)
        if first is None:
            continue
        id_col, text_col = _column(f, first[0], first[2], id_names, unit), _column(f, first[0], first[2], text_names, unit)
        for _, _, rec in validated_records(f, itertools.chain([first], rows), id_field=id_col, required=(text_col,), optional=optional, ids=ids, unit=unit):
            out[rec[id_col]] = {"text": rec[text_col], **{k: rec[k] for k in optional}}
    if not out:
        raise DataError(files[0] if files else "(no files)", None, None, "has no records")
    return out


def _pair_qrels(files: list[Path], qid_names: tuple[str, ...], did_names: tuple[str, ...]) -> Qrels:
    """Qrels from rows of (query id, document id, optional ``score``, default 1), strictly checked like ``qrels/*.tsv``."""
    qrels = QrelsBuilder(files[0] if len(files) == 1 else files[0].parent)
    for f in files:
        rows, unit = _rows(f)
        for n, _, row in rows:
            q = check_id(f, n, row, _column(f, n, row, qid_names, unit), unit=unit)
            d = check_id(f, n, row, _column(f, n, row, did_names, unit), unit=unit)
            qrels.add(f, n, q, d, parse_relevance(f, n, row.get("score", 1), unit=unit), unit=unit)
    return qrels.qrels()


def convert_hf(folder: Path, dst: Path, split: str = "test") -> Path:
    """An MTEB/CoIR-style snapshot (corpus, queries, qrels as jsonl or parquet) -> BEIR folder."""
    corpus_files, query_files = _find(folder, "corpus"), [p for p in _find(folder, "quer") if "qrels" not in str(p).lower()]
    qrels_files = [p for p in _find(folder, "qrels") if split in p.name] or [p for p in _find(folder, split) if p not in corpus_files + query_files]
    if not qrels_files:
        raise FileNotFoundError(f"{folder}: no qrels file for split {split!r}")
    docs = _records(corpus_files, ("_id", "id", "corpus-id", "docid", "doc_id"), ("text", "content", "code"), optional=("title",))
    corpus = {d: {"title": r["title"], "text": r["text"]} for d, r in docs.items()}
    queries = {q: r["text"] for q, r in _records(query_files, ("_id", "id", "query-id", "query_id", "qid"), ("text", "query")).items()}
    qrels = _pair_qrels(qrels_files, ("query-id", "query_id", "qid"), ("corpus-id", "corpus_id", "doc_id", "docid"))
    return write_beir_folder(dst, corpus, queries, qrels, {"converted_from": str(folder), "layout": "hf", "split": split}, split)


# ---- long-document sets in their published layouts -------------------------------------------


def _mldr_positives(path: Path, n: int, obj: dict) -> list[str]:
    """The ``docid`` of each of a query's ``positive_passages`` (at least one)."""
    passages = obj.get("positive_passages")
    if not isinstance(passages, list) or not passages:
        raise DataError(path, n, "positive_passages", f"must be a list of {{'docid': ...}} objects, at least one (got {passages!r:.60})")
    out = []
    for i, p in enumerate(passages):
        field = f"positive_passages[{i}].docid"
        out.append(check_id(path, n, {field: p["docid"]} if isinstance(p, dict) and "docid" in p else {}, field))
    return out


def convert_mldr(src: Path, dst: Path, split: str = "test") -> Path:
    """MLDR (Chen et al. 2024, ``Shitao/MLDR``) English layout -> BEIR folder.

    ``src/corpus.jsonl``: ``{"docid", "text"}``; ``src/<split>.jsonl``: ``{"query_id", "query",
    "positive_passages": [{"docid", ...}], ...}``.
    """
    corpus = {d: {"title": "", "text": r["text"]} for d, r in _records([src / "corpus.jsonl"], ("docid",), ("text",)).items()}
    qpath = src / f"{split}.jsonl"
    queries, qrels = {}, QrelsBuilder(qpath)
    for n, _, obj in validated_records(qpath, iter_json_objects(qpath), id_field="query_id", required=("query",), optional=()):
        queries[obj["query_id"]] = obj["query"]
        for did in _mldr_positives(qpath, n, obj):
            qrels.add(qpath, n, obj["query_id"], did, 1)
    return write_beir_folder(dst, corpus, queries, qrels.qrels(), {"converted_from": str(src), "layout": "mldr", "split": split}, split)


def convert_longembed(src: Path, dst: Path) -> Path:
    """A LongEmbed task folder (``dwzhu/LongEmbed``: ``corpus.jsonl`` {doc_id, text}, ``queries.jsonl`` {qid, text},
    ``qrels.jsonl`` {qid, doc_id}) -> BEIR folder."""
    corpus = {d: {"title": "", "text": r["text"]} for d, r in _records([src / "corpus.jsonl"], ("doc_id",), ("text",)).items()}
    queries = {q: r["text"] for q, r in _records([src / "queries.jsonl"], ("qid",), ("text",)).items()}
    qrels = _pair_qrels([src / "qrels.jsonl"], ("qid",), ("doc_id",))
    return write_beir_folder(dst, corpus, queries, qrels, {"converted_from": str(src), "layout": "longembed"})


def source_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def as_beir(folder: Path, cache_root: Path, split: str = "test") -> Path:
    """``folder`` itself if it is BEIR, else its BEIR conversion in the cache (made once per split: ``qrels/<split>.tsv``)."""
    folder = Path(folder)
    layout = detect(folder, split)
    if layout == "beir":
        return folder
    if layout is None:
        raise FileNotFoundError(f"{folder}: not a BEIR, MLDR, LongEmbed or MTEB/HF retrieval folder")
    # LongEmbed folders hold one (test) split; MLDR and HF snapshots are converted per split, so the split is in the name
    dst = Path(cache_root) / "converted" / f"{folder.name}-{layout}-{'test' if layout == 'longembed' else split}-{source_hash(folder)}"
    with file_lock(dst):  # a second run converting the same folder waits, then reuses the first one's conversion
        if (dst / "generator.json").is_file():
            return dst
        return {"mldr": lambda: convert_mldr(folder, dst, split), "longembed": lambda: convert_longembed(folder, dst), "hf": lambda: convert_hf(folder, dst, split)}[layout]()
