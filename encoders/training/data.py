"""Training data: (query, positive[, negatives]) examples from BEIR qrels, a JSONL file, or MS MARCO.

``--train-data`` accepts:

    scifact            BEIR name (resolved like evaluate.py's datasets), split ``train``
    scifact:dev        ... another qrels split
    /path/to/beir      a BEIR folder (``:split`` allowed)
    /path/pairs.jsonl  one object per line: {"query": str, "positive": str, "negatives": [str, ...]?}
    msmarco            the ModernBERT paper's MS MARCO data from the Hugging Face hub (online)
    /path/saved        a ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` folder
                       (e.g. an offline copy of the MS MARCO triplets), ``:split`` picks a DatasetDict's
                       split (default ``train``); also found by name under ``--data-dir``

A save_to_disk folder is recognised by its content (``dataset_info.json`` + ``state.json``, or
``dataset_dict.json``), never by its name. Its rows, like JSONL lines, are sentence-transformers
shapes: the query in ``query`` or ``anchor``, the positive in ``positive``, negatives (optional) in
``negatives`` (a list), ``negative`` and/or ``negative_1`` .. ``negative_k``; other columns are
ignored. Both go through the same per-row check, with the file (folder), line (row) and field in
every error.

BEIR pairs are every (query, doc) with qrels score > 0 whose doc is in the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrieval.beir import BeirDataset, DataError, check_text, doc_text, file_sha256, iter_json_objects

log = logging.getLogger(__name__)

# The paper's fine-tuning data (ModernBERT, arXiv 2412.13663, appendix: retrieval fine-tuning).
MSMARCO = {
    "dpr": ("sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1", "triplet-hard"),
    "colbert": ("lightonai/ms-marco-en-bge", "train"),
}


@dataclass(frozen=True)
class TrainSource:
    """What ``--train-data`` named, parsed: exactly one of the kinds below."""

    kind: str  # beir | jsonl | msmarco | saved (a datasets save_to_disk folder)
    name: str
    split: str = "train"


def is_saved_dataset(path: Path | str) -> bool:
    """Whether ``path`` is a ``datasets`` ``save_to_disk`` folder: a Dataset (``dataset_info.json`` and
    ``state.json``) or a DatasetDict (``dataset_dict.json``). Decided by content, never by name."""
    p = Path(path)
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or ((p / "state.json").is_file() and (p / "dataset_info.json").is_file()))


def parse_train_data(spec: str, data_dir: str | Path | None = None) -> TrainSource:
    """``NAME_OR_PATH[:split]`` -> TrainSource. ``:split`` is read off BEIR names/folders and save_to_disk folders.

    A save_to_disk folder (given as a path, or as a name under ``data_dir``) is kind ``saved``.
    """
    if spec.endswith(".jsonl"):
        return TrainSource("jsonl", spec)
    name, _, split = spec.rpartition(":") if ":" in spec and not os.path.isdir(spec) else (spec, "", "")
    for cand in (name, *([os.path.join(data_dir, name)] if data_dir and os.sep not in name else [])):
        if is_saved_dataset(cand):
            return TrainSource("saved", cand, split)  # split "": a DatasetDict's train split
    if spec == "msmarco":
        return TrainSource("msmarco", spec)
    return TrainSource("beir", name, split or "train")


@dataclass(frozen=True)
class Examples:
    """Training examples as parallel lists; ``qids``/``pos_ids`` are set for BEIR data (needed to mine)."""

    queries: list[str]
    positives: list[str]
    negatives: list[list[str]]  # per example, maybe empty
    qids: list[str] | None = None
    pos_ids: list[str] | None = None


def beir_pairs(ds: BeirDataset) -> list[tuple[str, str]]:
    """Every (qid, doc_id) with qrels score > 0 and the doc in the corpus, in qrels order."""
    return [(q, d) for q, docs in ds.qrels.items() for d, s in docs.items() if s > 0 and d in ds.corpus]


def beir_examples(ds: BeirDataset) -> Examples:
    pairs = beir_pairs(ds)
    if not pairs:
        raise DataError(ds.path / "qrels" / f"{ds.split}.tsv", None, None, "has no (query, document) pair with score > 0 and the document in the corpus")
    return Examples(
        queries=[ds.queries[q] for q, _ in pairs],
        positives=[doc_text(ds.corpus[d]) for _, d in pairs],
        negatives=[[] for _ in pairs],
        qids=[q for q, _ in pairs],
        pos_ids=[d for _, d in pairs],
    )


QUERY_FIELDS = ("query", "anchor")  # sentence-transformers' names for the query column
_NEGATIVE_K = re.compile(r"negative_(\d+)")


def negative_fields(names) -> list[str]:
    """The negative columns among ``names``, in order: ``negatives`` (a list), ``negative``, ``negative_1`` .. ``negative_k``."""
    numbered = sorted((int(m.group(1)), n) for n in names if (m := _NEGATIVE_K.fullmatch(n)))
    return [n for n in ("negatives", "negative") if n in names] + [n for _, n in numbered]


def check_example(path: Path, n: int, row: dict, *, unit: str = "line", negatives: list[str] | None = None) -> tuple[str, str, list[str]]:
    """One training example ``(query, positive, negatives)`` from a JSONL object or a dataset row, checked.

    The query is ``query`` (or ``anchor``), the positive ``positive``, both non-empty strings; negatives
    come from ``negatives`` (a list of non-empty strings) and the non-empty strings ``negative``,
    ``negative_1`` .. (``negatives``: those fields, default: the ones ``row`` has). A breach is a
    DataError naming ``path``, row/line ``n`` and the field.
    """
    qfield = next((f for f in QUERY_FIELDS if f in row), QUERY_FIELDS[0])
    if qfield not in row:
        raise DataError(path, n, qfield, f"is missing (the query: 'query' or 'anchor'; have {', '.join(map(repr, row)) or 'no fields'})", unit=unit)
    query = check_text(path, n, row, qfield, nonempty=True, unit=unit)
    positive = check_text(path, n, row, "positive", nonempty=True, unit=unit)
    negs: list[str] = []
    for f in negative_fields(row) if negatives is None else negatives:
        if f == "negatives":
            value = row.get(f, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise DataError(path, n, f, f"must be a list of non-empty strings, got {value!r:.80}", unit=unit)
            negs.extend(value)
        else:
            negs.append(check_text(path, n, row, f, nonempty=True, unit=unit))
    return query, positive, negs


def load_jsonl_examples(path: Path | str) -> Examples:
    """Read ``{"query", "positive", "negatives"?}`` lines (or the other shapes of :func:`check_example`)
    through the loader's validating reader (:func:`retrieval.beir.iter_json_objects`: blank lines
    skipped; a missing file, bad UTF-8 or JSON, a missing or empty field is a DataError naming the
    file, line and field)."""
    path = Path(path)
    qs, ps, ns = [], [], []
    for lineno, _, obj in iter_json_objects(path):
        q, p, negs = check_example(path, lineno, obj)
        qs.append(q)
        ps.append(p)
        ns.append(negs)
    if not qs:
        raise DataError(path, None, None, "is empty: no examples")
    return Examples(qs, ps, ns)


def saved_split(folder: Path | str, split: str = "") -> Path:
    """The folder holding the rows: ``folder`` for a saved Dataset, ``folder/<split>`` for a DatasetDict
    (``split`` "": ``train``).

    A split the DatasetDict does not have is a DataError listing the ones it has; a split named for a
    single Dataset (it has none) is one too.
    """
    folder = Path(folder)
    if not is_saved_dataset(folder):
        raise DataError(folder, None, None, "is not a datasets save_to_disk folder (needs dataset_info.json and state.json, or dataset_dict.json)")
    if not (folder / "dataset_dict.json").is_file():
        if split:
            raise DataError(folder, None, None, f"is a single saved Dataset with no splits; drop ':{split}' from --train-data")
        return folder
    split = split or "train"
    try:
        splits = list(json.loads((folder / "dataset_dict.json").read_text())["splits"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(folder / "dataset_dict.json", None, "splits", f"unreadable ({type(e).__name__}: {e})") from None
    if split not in splits:
        raise DataError(folder, None, None, f"split {split!r} not found; available splits: {splits} (pick one with {folder}:SPLIT)")
    return folder / split


def saved_checksum(folder: Path) -> str:
    """sha256 over the sha256 of a saved Dataset's arrow files (names included): the rows' content."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).glob("*.arrow")):
        h.update(f"{p.name}:{file_sha256(p)}\n".encode())
    return h.hexdigest()


def load_saved_examples(folder: Path | str, split: str = "", *, pick: Callable[[int], list[int]] | None = None,
                        batch_size: int = 10_000) -> Examples:
    """Examples from a ``save_to_disk`` folder (a Dataset, or ``split`` of a DatasetDict, default
    ``train``: :func:`saved_split`), loaded with ``datasets.load_from_disk``.

    Every row is checked by :func:`check_example` (errors name the split's folder, the row, numbered
    from 1, and the field), the whole dataset before any is used. ``pick(n)`` (sorted row indices)
    chooses the rows kept, so a subsample of a large set is all that is held in memory.
    """
    import datasets  # lazy: datasets is slow to import; only training from a saved dataset needs it

    path = saved_split(folder, split)
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # a truncated arrow file, a mismatched state.json ...
        raise DataError(path, None, None, f"cannot be read by datasets.load_from_disk ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(ds, datasets.DatasetDict):  # dataset_dict.json inside a split folder
        raise DataError(path, None, None, f"holds a DatasetDict (splits {list(ds)}), not one split's rows")
    names = ds.column_names
    if len(ds) == 0:
        raise DataError(path, None, None, "is empty: no examples")
    if not any(f in names for f in QUERY_FIELDS) or "positive" not in names:
        field = "positive" if any(f in names for f in QUERY_FIELDS) else "query"
        hint = ("; teacher-score rows (query_id, document_ids, scores) need their queries and documents: "
                "export (query, positive, negatives) texts instead") if "document_ids" in names else ""
        raise DataError(path, 1, field, f"is missing: expected columns query (or anchor), positive and optional negative columns, "
                                        f"have {names}{hint}", unit="row")
    qfield = next(f for f in QUERY_FIELDS if f in names)
    negs = negative_fields(names)
    used = [qfield, "positive", *negs]
    ignored = [n for n in names if n not in used]
    if ignored:
        log.info("%s: columns %s are not read", path, ignored)
    wanted = set(range(len(ds)) if pick is None else pick(len(ds)))
    cols = ds.select_columns(used)
    qs, ps, ns = [], [], []
    for start in range(0, len(cols), batch_size):
        batch = cols[start:start + batch_size]
        for i in range(len(batch[qfield])):
            q, p, neg = check_example(path, start + i + 1, {f: batch[f][i] for f in used}, unit="row", negatives=negs)
            if start + i in wanted:
                qs.append(q)
                ps.append(p)
                ns.append(neg)
    return Examples(qs, ps, ns)


def load_msmarco(encoder: str):
    """The paper's MS MARCO training set from the Hugging Face hub, as a ``datasets.Dataset``.

    Offline (``HF_HUB_OFFLINE=1`` or no network), raises FileNotFoundError naming the dataset id
    and how to supply a local copy (a ``save_to_disk`` folder: :func:`load_saved_examples`).
    """
    import datasets  # lazy: datasets is slow to import; only MS MARCO training needs it

    repo, subset = MSMARCO[encoder]
    try:
        return datasets.load_dataset(repo, subset, split="train")
    except Exception as e:  # offline, hub down, gated ...
        trepo, tsubset = MSMARCO["dpr"]
        save = f"`python -c \"import datasets; datasets.load_dataset('{trepo}', '{tsubset}', split='train').save_to_disk('DIR')\"`"
        how = (f"On a machine with internet run {save}, copy DIR here and pass --train-data DIR" if encoder == "dpr" else
               f"Its teacher-score rows (query_id, document_ids, scores) need the hub's queries and documents subsets and cannot be "
               f"read from a local copy; offline, train on (query, positive, negatives) triplets instead: on a machine with internet "
               f"run {save}, copy DIR here and pass --train-data DIR (contrastive loss, or distillation with --teacher)")
        raise FileNotFoundError(
            f"cannot load the MS MARCO training set {repo!r} (subset {subset!r}) from the Hugging Face hub "
            f"({type(e).__name__}: {str(e)[:200]}). Offline? {how}; or export (query, positive, negatives) lines to a "
            "JSONL file and pass --train-data FILE.jsonl"
        ) from None
