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
import math
import os
import re
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
    """A dataset file is malformed. The message names the file, line (or row) and field."""

    def __init__(self, path: Path | str, line: int | None, field: str | None, problem: str, *, unit: str = "line"):
        self.path, self.line, self.field = str(path), line, field
        where = f"{path}" + (f", {unit} {line}" if line is not None else "")
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
    queries_without_text: int = 0  # qrels query ids with no line in queries.jsonl: dropped (BEIR and MTEB drop them too)
    empty_queries: tuple[str, ...] = ()  # evaluated queries whose text is empty or blank: they retrieve nothing and score 0


# ---- the validating reader: every loader, converter and training-data reader goes through it -----


BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark that Windows tools (Notepad, Excel's "CSV UTF-8") put first


def _read_lines(path: Path):
    """Yield (line_number, byte_offset, text) for each non-blank line; a missing file or non-UTF-8 bytes are DataErrors.

    A leading UTF-8 byte-order mark is read past (the offset of line 1 is then 3, where its text starts).
    """
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(BOM):
                log.info("%s: starts with a UTF-8 byte-order mark; read past it", path)
                raw, offset = raw[len(BOM):], len(BOM)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, lineno, None, f"is not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if line.strip():
                yield lineno, offset, line
            offset += len(raw)


def parse_json_object(path: Path, lineno: int, line: str) -> dict:
    """One JSONL line as a dict; malformed JSON or a non-object is a DataError naming file and line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(path, lineno, None, f"malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(path, lineno, None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_json_objects(path: Path):
    """``(line_number, byte_offset, object)`` for each non-blank line of a JSONL file (blank lines skipped).

    A missing file, non-UTF-8 bytes, malformed JSON or a line that is not an object is a DataError
    naming the file and the line.
    """
    path = Path(path)
    for lineno, offset, line in _read_lines(path):
        yield lineno, offset, parse_json_object(path, lineno, line)


def check_id(path: Path, lineno: int, obj: dict, field: str, *, unit: str = "line") -> str:
    """``obj[field]`` as a non-empty id string; integer ids (some dumps store them) become strings."""
    if field not in obj:
        raise DataError(path, lineno, field, "is missing", unit=unit)
    value = obj[field]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(path, lineno, field, f"must be a string, got {type(value).__name__}", unit=unit)
    if not value.strip():
        raise DataError(path, lineno, field, "is empty", unit=unit)
    return value


def check_text(path: Path, lineno: int, obj: dict, field: str, *, optional: bool = False, nonempty: bool = False, unit: str = "line") -> str:
    """``obj[field]`` as a string: missing (unless ``optional``, read as "") or a non-string is a DataError."""
    value = obj.get(field)
    if value is None:
        if optional:
            return ""
        raise DataError(path, lineno, field, "is missing", unit=unit)
    if not isinstance(value, str):
        raise DataError(path, lineno, field, f"must be a string, got {type(value).__name__}", unit=unit)
    if nonempty and not value.strip():
        raise DataError(path, lineno, field, "must be a non-empty string", unit=unit)
    return value


class UniqueIds:
    """Where each id was first seen, across one or more files: a repeat is a DataError naming both places."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[Path, int]] = {}

    def add(self, path: Path, lineno: int, field: str, _id: str, *, unit: str = "line") -> None:
        if _id in self.first:
            fpath, fline = self.first[_id]
            where = f"{unit} {fline}" + ("" if fpath == path else f" of {fpath}")
            raise DataError(path, lineno, field, f"duplicate id {_id!r} (first seen on {where})", unit=unit)
        self.first[_id] = (path, lineno)


def validated_records(path: Path, rows, *, id_field: str = "_id", required: tuple[str, ...] = ("text",), optional: tuple[str, ...] = ("title",),
                      ids: UniqueIds | None = None, unit: str = "line"):
    """Check ``rows`` (``(line, offset, object)`` triples, e.g. :func:`iter_json_objects`) as id-keyed records.

    Yields ``(line, offset, record)``: the object with ``record[id_field]`` a unique non-empty string
    (``ids`` may be shared across the files of one source), the ``required`` fields strings and the
    ``optional`` ones strings ("" when absent). Any breach is a DataError with file, line and field.
    """
    ids = UniqueIds() if ids is None else ids
    for lineno, offset, obj in rows:
        _id = check_id(path, lineno, obj, id_field, unit=unit)
        rec = {**obj, id_field: _id}
        rec.update((f, check_text(path, lineno, obj, f, unit=unit)) for f in required)
        rec.update((f, check_text(path, lineno, obj, f, optional=True, unit=unit)) for f in optional)
        ids.add(path, lineno, id_field, _id, unit=unit)
        yield lineno, offset, rec


def _iter_records(path: Path, required: tuple[str, ...]):
    """Validated BEIR records (``_id``, ``required``, optional ``title``) of a JSONL file: (line, offset, record)."""
    ids = UniqueIds()
    yield from validated_records(path, iter_json_objects(path), required=required, ids=ids)
    if not ids.first:
        raise DataError(path, None, None, "is empty: no records")


def load_corpus(path: Path) -> Corpus:
    """``corpus.jsonl`` -> ``{doc_id: {"title", "text"}}``. ``title`` may be absent (read as "")."""
    return {obj["_id"]: {"title": obj["title"], "text": obj["text"]} for _, _, obj in _iter_records(Path(path), ("text",))}


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
_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")  # "2" and "2.0"; never "0.9", "1e3", "inf", "nan"


def parse_relevance(path: Path, lineno: int, value, *, field: str = "score", unit: str = "line") -> int:
    """A relevance judgment as an int: integers only, negative allowed (TREC's junk). ``value``: str, int or float.

    A fraction (``0.9`` is not read as 0), inf, NaN, a bool or a non-number is a DataError naming
    file, line and field. An integral float (``2.0``, a float64 parquet column) is read as that integer.
    """
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip().split(".")[0])
    raise DataError(path, lineno, field, f"must be an integer relevance (negative allowed), got {value!r}", unit=unit)


class QrelsBuilder:
    """Collects the judgments of one qrels source: ``add(...)`` per row, then :meth:`qrels`.

    The same (query-id, corpus-id) again with another relevance is a DataError (field "score")
    naming both lines; an identical repeat is counted, kept once, and reported in one warning.
    """

    def __init__(self, source: Path | str):
        self.source = source
        self._qrels: Qrels = {}
        self._first: dict[tuple[str, str], tuple[Path, int]] = {}
        self.duplicates = 0  # identical repeated rows

    def add(self, path: Path, lineno: int, qid: str, doc_id: str, rel: int, *, unit: str = "line") -> None:
        docs = self._qrels.setdefault(qid, {})
        if doc_id not in docs:
            docs[doc_id] = rel
            self._first[qid, doc_id] = (path, lineno)
            return
        if docs[doc_id] != rel:
            fpath, fline = self._first[qid, doc_id]
            where = f"{unit} {fline}" + ("" if fpath == path else f" of {fpath}")
            raise DataError(path, lineno, "score", f"conflicting duplicate of ({qid!r}, {doc_id!r}): {rel} here, {docs[doc_id]} on {where}", unit=unit)
        self.duplicates += 1

    def qrels(self) -> Qrels:
        """``{qid: {doc_id: relevance}}`` in first-seen order (none at all is a DataError); logs identical duplicates."""
        if not self._qrels:
            raise DataError(self.source, None, None, "has no judgments (a header but no rows?)")
        if self.duplicates:
            log.warning("%s: %d identical duplicate rows (same query-id, corpus-id and score) counted once", self.source, self.duplicates)
        return self._qrels


def load_qrels(path: Path) -> Qrels:
    """``qrels/<split>.tsv`` (header ``query-id corpus-id score``) -> ``{qid: {doc_id: score}}``, scores strict ints."""
    path = Path(path)
    lines = ((n, line) for n, _, line in _read_lines(path))
    try:
        lineno, header = next(lines)
    except StopIteration:
        raise DataError(path, None, None, "is empty: no header and no rows") from None
    cols = tuple(c.strip() for c in header.rstrip("\r\n").split("\t"))
    if cols != QRELS_HEADER:
        raise DataError(path, lineno, "header", f"expected columns {list(QRELS_HEADER)} separated by tabs, got {list(cols)}")
    qrels = QrelsBuilder(path)
    for lineno, line in lines:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 3:
            raise DataError(path, lineno, None, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(parts)}")
        qid, did, score = (p.strip() for p in parts)
        for field, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise DataError(path, lineno, field, "is empty")
        qrels.add(path, lineno, qid, did, parse_relevance(path, lineno, score))
    return qrels.qrels()


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
        log.warning("%s: %d qrels query ids have no line in %s (e.g. %r); they are dropped, and counted in the result (queries_without_text)",
                    qrels_path, len(missing_q), queries_path, missing_q[0])
        qrels = {q: d for q, d in qrels.items() if q in queries}
    empty = tuple(q for q in qrels if not queries[q].strip())
    if empty:
        log.warning("%s: %d evaluated queries have an empty text (e.g. %r); they retrieve nothing and score 0, counted in the result (empty_queries)",
                    queries_path, len(empty), empty[0])
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
        queries_without_text=len(missing_q),
        empty_queries=empty,
    )


def content_hash(doc: Mapping[str, str]) -> str:
    """A hash of a document's content (title and text), never of its id or position."""
    return hashlib.sha1(f"{doc.get('title', '')}\x00{doc['text']}".encode()).hexdigest()


def content_order(corpus: Mapping) -> list[str]:
    """The corpus's ids ordered by :func:`content_hash`, identical documents in file order.

    Retrievers index the corpus in this order, so a copy with its lines permuted or its ids renamed
    builds the same index: FAISS IVF and PQ training (k-means picks its starting points by
    position), HNSW's graph (built in insertion order) and PLAID's centroids all depend on the
    order documents come in, and encoding batches on which documents share a batch. Identical
    documents have identical vectors, so their order among themselves changes nothing but which id
    sits where; trec_eval's tie order (by id) decides between them.

    >>> content_order({"b": {"title": "", "text": "x"}, "a": {"title": "", "text": "x"}, "c": {"title": "", "text": "y"}})
    ['b', 'a', 'c']
    """
    return sorted(corpus, key=lambda d: content_hash(corpus[d]))  # sorted() is stable: identical documents keep file order


def text_order(texts: Mapping[str, str]) -> list[str]:
    """Query ids ordered by a hash of their text (identical texts in the given order): the search order of every job."""
    return sorted(texts, key=lambda q: hashlib.sha1(texts[q].encode()).hexdigest())


class Ordered(Mapping):
    """``base`` (a corpus dict or a :class:`DiskCorpus`) iterated in ``order``; lookups go to ``base``."""

    def __init__(self, base: Mapping, order: list[str]):
        self.base, self.order = base, order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)

    def __contains__(self, key) -> bool:
        return key in self.base

    def __getitem__(self, key):
        return self.base[key]


def doc_text(doc: dict[str, str], sep: str = " ") -> str:
    """The text a model sees for a document: ``title + sep + text``, stripped (as BEIR and MTEB do)."""
    return (doc.get("title", "") + sep + doc["text"]).strip()


def write_beir_folder(folder: Path, corpus: dict, queries: dict, qrels: dict, meta: dict, split: str = "test") -> Path:
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
        with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:  # the split the qrels were read for
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
