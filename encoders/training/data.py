"""Training data: (query, positive[, negatives]) examples from BEIR qrels, a JSONL file, or MS MARCO.

``--train-data`` accepts:

    scifact            BEIR name (resolved like evaluate.py's datasets), split ``train``
    scifact:dev        ... another qrels split
    /path/to/beir      a BEIR folder (``:split`` allowed)
    /path/pairs.jsonl  one object per line: {"query": str, "positive": str, "negatives": [str, ...]?}
    msmarco            the ModernBERT paper's MS MARCO data from the Hugging Face hub (online), or a
                       local ``datasets.save_to_disk`` copy given as a folder path

BEIR pairs are every (query, doc) with qrels score > 0 whose doc is in the corpus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from retrieval.beir import BeirDataset, DataError, check_text, doc_text, iter_json_objects

# The paper's fine-tuning data (ModernBERT, arXiv 2412.13663, appendix: retrieval fine-tuning).
MSMARCO = {
    "dpr": ("sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1", "triplet-hard"),
    "colbert": ("lightonai/ms-marco-en-bge", "train"),
}


@dataclass(frozen=True)
class TrainSource:
    """What ``--train-data`` named, parsed: exactly one of the kinds below."""

    kind: str  # beir | jsonl | msmarco
    name: str
    split: str = "train"


def parse_train_data(spec: str) -> TrainSource:
    """``NAME_OR_PATH[:split]`` -> TrainSource. ``:split`` is only read off BEIR names/folders."""
    if spec.endswith(".jsonl"):
        return TrainSource("jsonl", spec)
    if spec == "msmarco":
        return TrainSource("msmarco", spec)
    name, _, split = spec.rpartition(":") if ":" in spec and not os.path.isdir(spec) else (spec, "", "")
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


def load_jsonl_examples(path: Path | str) -> Examples:
    """Read ``{"query", "positive", "negatives"?}`` lines through the loader's validating reader
    (:func:`retrieval.beir.iter_json_objects`: blank lines skipped; a missing file, bad UTF-8 or
    JSON, a missing or empty field is a DataError naming the file, line and field)."""
    path = Path(path)
    qs, ps, ns = [], [], []
    for lineno, _, obj in iter_json_objects(path):
        qs.append(check_text(path, lineno, obj, "query", nonempty=True))
        ps.append(check_text(path, lineno, obj, "positive", nonempty=True))
        negs = obj.get("negatives", [])
        if not isinstance(negs, list) or not all(isinstance(n, str) and n.strip() for n in negs):
            raise DataError(path, lineno, "negatives", "must be a list of non-empty strings")
        ns.append(negs)
    if not qs:
        raise DataError(path, None, None, "is empty: no examples")
    return Examples(qs, ps, ns)


def load_msmarco(encoder: str, local: str | None = None):
    """The paper's MS MARCO training set as a ``datasets.Dataset`` (hub, or a ``save_to_disk`` folder).

    Offline (``HF_HUB_OFFLINE=1`` or no network) without a local copy, raises FileNotFoundError
    naming the dataset id and how to supply one.
    """
    import datasets  # lazy: datasets is slow to import; only MS MARCO training needs it

    repo, subset = MSMARCO[encoder]
    if local:
        return datasets.load_from_disk(local)
    try:
        return datasets.load_dataset(repo, subset, split="train")
    except Exception as e:  # offline, hub down, gated ...
        raise FileNotFoundError(
            f"cannot load the MS MARCO training set {repo!r} (subset {subset!r}) from the Hugging Face hub "
            f"({type(e).__name__}: {str(e)[:200]}). Offline? On a machine with internet run "
            f"`python -c \"import datasets; datasets.load_dataset('{repo}', '{subset}', split='train').save_to_disk('DIR')\"`, "
            "copy DIR here and pass --train-data DIR; or export (query, positive, negatives) lines to a JSONL file "
            "and pass --train-data FILE.jsonl"
        ) from None
