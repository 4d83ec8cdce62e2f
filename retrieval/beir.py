"""Load and validate BEIR-format datasets.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id  corpus-id  score``).
The three return types are the BEIR dicts every IR tool reads:

    corpus:  dict[doc_id, {"title": str, "text": str}]
    queries: dict[query_id, str]
    qrels:   dict[query_id, dict[doc_id, int]]

Every malformed input raises :class:`DataError` naming the file, the line and the field,
before anything is written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


class DataError(ValueError):
    """A dataset file is malformed. The message names the file, line and field."""

    def __init__(self, path: Path | str, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field = str(path), line, field
        where = f"{path}" + (f", line {line}" if line is not None else "")
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {problem}")


@dataclass(frozen=True)
class BeirDataset:
    """One split of a BEIR dataset, loaded and validated."""

    name: str
    path: Path
    split: str
    corpus: Corpus  # or a DiskCorpus (same interface) when loaded with stream=True
    queries: Queries  # only the queries that have qrels in this split
    qrels: Qrels
    checksum: str  # sha256 over corpus, queries and this split's qrels files
    corpus_checksum: str  # sha256 of corpus.jsonl alone (keys the corpus embedding cache)
    unknown_qrels_docs: int  # qrels rows whose doc id is not in the corpus


def _read_lines(path: Path):
    """Yield (line_number, byte_offset, text) for each non-blank line; reject non-UTF-8 bytes."""
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, lineno, None, f"is not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if line.strip():
                yield lineno, offset, line
            offset += len(raw)


def read_lines(path: Path):
    """(line_number, text) for each non-blank line of ``path``; non-UTF-8 bytes are a DataError."""
    for lineno, _, line in _read_lines(path):
        yield lineno, line


def parse_json_object(path: Path, lineno: int, line: str) -> dict:
    """One JSONL line as a dict; malformed JSON or a non-object is a DataError naming file and line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(path, lineno, None, f"malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _parse_record(path: Path, lineno: int, line: str, required: tuple[str, ...]) -> dict:
    obj = parse_json_object(path, lineno, line)
    for field in ("_id", *required):
        if field not in obj:
            raise DataError(path, lineno, field, "is missing")
        if field == "_id" and isinstance(obj[field], int):
            obj[field] = str(obj[field])  # some BEIR dumps store numeric ids
        if not isinstance(obj[field], str):
            raise DataError(path, lineno, field, f"must be a string, got {type(obj[field]).__name__}")
    if obj["_id"] == "":
        raise DataError(path, lineno, "_id", "is empty")
    title = obj.get("title")
    if title is not None and not isinstance(title, str):
        raise DataError(path, lineno, "title", f"must be a string, got {type(title).__name__}")
    return obj


def _iter_records(path: Path, required: tuple[str, ...]):
    """Validated records of a JSONL file keyed by ``_id``: yields (line_number, byte_offset, record)."""
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    first_line: dict[str, int] = {}
    for lineno, offset, line in _read_lines(path):
        obj = _parse_record(path, lineno, line, required)
        _id = obj["_id"]
        if _id in first_line:
            raise DataError(path, lineno, "_id", f"duplicate id {_id!r} (first seen on line {first_line[_id]})")
        first_line[_id] = lineno
        yield lineno, offset, obj
    if not first_line:
        raise DataError(path, None, None, "is empty: no records")


def load_corpus(path: Path) -> Corpus:
    """``corpus.jsonl`` -> ``{doc_id: {"title", "text"}}``. ``title`` may be absent (read as "")."""
    return {obj["_id"]: {"title": obj.get("title") or "", "text": obj["text"]} for _, _, obj in _iter_records(Path(path), ("text",))}


class DiskCorpus(Mapping):
    """A validated ``corpus.jsonl`` read lazily: ids and byte offsets in memory, texts on disk.

    Behaves like the corpus dict (``corpus[doc_id] -> {"title", "text"}``, iteration in file order),
    so a corpus far larger than memory can be encoded in streaming fashion.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        ids, offsets = [], []
        for _, offset, obj in _iter_records(self.path, ("text",)):
            ids.append(obj["_id"])
            offsets.append(offset)
        self._ids = ids
        self._pos = {d: i for i, d in enumerate(ids)}
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._fh = None

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(self._ids)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self._pos

    def __getitem__(self, doc_id: str) -> dict[str, str]:
        if self._fh is None:
            self._fh = open(self.path, "rb")
        self._fh.seek(int(self._offsets[self._pos[doc_id]]))
        obj = json.loads(self._fh.readline())
        return {"title": obj.get("title") or "", "text": obj["text"]}


class LazyTexts(Sequence):
    """``texts[lo:hi]`` reads just those documents' ``doc_text`` from a (disk) corpus."""

    def __init__(self, corpus: Mapping, doc_ids: list[str]):
        self.corpus, self.doc_ids = corpus, doc_ids

    def __len__(self) -> int:
        return len(self.doc_ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [doc_text(self.corpus[d]) for d in self.doc_ids[i]]
        return doc_text(self.corpus[self.doc_ids[i]])


def load_queries(path: Path) -> Queries:
    """``queries.jsonl`` -> ``{query_id: text}``."""
    return {obj["_id"]: obj["text"] for _, _, obj in _iter_records(Path(path), ("text",))}


QRELS_HEADER = ("query-id", "corpus-id", "score")


def load_qrels(path: Path) -> Qrels:
    """``qrels/<split>.tsv`` (header ``query-id corpus-id score``) -> ``{qid: {doc_id: score}}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    qrels: Qrels = {}
    lines = ((n, line) for n, _, line in _read_lines(path))
    try:
        lineno, header = next(lines)
    except StopIteration:
        raise DataError(path, None, None, "is empty: no header and no rows") from None
    cols = tuple(c.strip() for c in header.rstrip("\r\n").split("\t"))
    if cols != QRELS_HEADER:
        raise DataError(path, lineno, "header", f"expected columns {list(QRELS_HEADER)} separated by tabs, got {list(cols)}")
    for lineno, line in lines:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 3:
            raise DataError(path, lineno, None, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(parts)}")
        qid, did, score = (p.strip() for p in parts)
        for field, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise DataError(path, lineno, field, "is empty")
        try:
            rel = int(float(score))
        except ValueError:
            raise DataError(path, lineno, "score", f"must be an integer, got {score!r}") from None
        qrels.setdefault(qid, {})[did] = rel
    if not qrels:
        raise DataError(path, None, None, "has a header but no rows")
    return qrels


def file_sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_files(folder: Path, split: str) -> tuple[Path, Path, Path]:
    folder = Path(folder)
    return folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"


def dataset_checksum(folder: Path, split: str) -> str:
    """sha256 over the sha256 of the three files a split reads (names included)."""
    h = hashlib.sha256()
    for p in dataset_files(folder, split):
        if not p.is_file():
            raise DataError(p, None, None, "file not found")
        h.update(f"{p.name}:{file_sha256(p)}\n".encode())
    return h.hexdigest()


def load_beir(folder: Path, split: str = "test", *, name: str | None = None, stream: bool = False) -> BeirDataset:
    """Load one split of a BEIR folder and validate it.

    Queries are restricted to those with qrels in ``split`` (BEIR and MTEB do the same).
    Qrels that point at documents missing from the corpus are kept (they count as
    unretrievable relevant documents, as in BEIR) and reported in one counted warning.
    """
    folder = Path(folder)
    corpus_path, queries_path, qrels_path = dataset_files(folder, split)
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(qrels_path, None, None, f"split {split!r} not found; available splits: {available}")
    corpus = DiskCorpus(corpus_path) if stream else load_corpus(corpus_path)
    queries = load_queries(queries_path)
    qrels = load_qrels(qrels_path)
    missing_q = [q for q in qrels if q not in queries]
    if missing_q:
        log.warning("%s: %d qrels query ids have no query text (e.g. %r); they are dropped", qrels_path, len(missing_q), missing_q[0])
        qrels = {q: d for q, d in qrels.items() if q in queries}
    unknown = sum(1 for docs in qrels.values() for d in docs if d not in corpus)
    if unknown:
        log.warning("%s: %d qrels rows point at documents not in %s", qrels_path, unknown, corpus_path)
    return BeirDataset(
        name=name or folder.name,
        path=folder,
        split=split,
        corpus=corpus,
        queries={q: queries[q] for q in qrels},
        qrels=qrels,
        checksum=dataset_checksum(folder, split),
        corpus_checksum=file_sha256(corpus_path),
        unknown_qrels_docs=unknown,
    )


def doc_text(doc: dict[str, str], sep: str = " ") -> str:
    """The text a model sees for a document: ``title + sep + text``, stripped (as BEIR and MTEB do)."""
    return (doc.get("title", "") + sep + doc["text"]).strip()


def write_beir_folder(folder: Path, corpus: dict, queries: dict, qrels: dict, meta: dict) -> Path:
    """Write a BEIR folder atomically (a temporary sibling renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        (tmp / "qrels").mkdir()
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as f:
            for did, doc in corpus.items():
                f.write(json.dumps({"_id": did, **doc}, ensure_ascii=False) + "\n")
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as f:
            for qid, text in queries.items():
                f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
        with open(tmp / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, docs in qrels.items():
                for did, s in docs.items():
                    f.write(f"{qid}\t{did}\t{s}\n")
        (tmp / "generator.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
