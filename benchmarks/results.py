"""Typed results: one JSON per (model, encoder, dataset, split, run-spec key), written atomically, with provenance.

Results are computed and saved first; tables and plots are rendered from these files later.
The file name ends in the first characters of ``config_key`` (the hash of everything that can
change the scores), so two settings never write the same file. Results written before that
(schema 1 files named without the key) still load and render.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.io import atomic_write_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass
class Result:
    model: str  # display name (with a variant suffix such as "[bf16]" when not the default setup)
    encoder: str  # bm25 | dpr | colbert
    dataset: str
    split: str
    task: str  # beir | mteb | longdoc | code
    metrics: dict[str, float]
    num_queries: int
    num_docs: int
    config_key: str  # hash of everything that determines the scores; a cached result is reused only if it matches
    provenance: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    per_query: dict = field(default_factory=dict)  # {"qids": [...], metric: [value per qid]} (compact); {} in older files
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    schema_version: int = SCHEMA_VERSION

    @property
    def stem(self) -> str:
        return result_stem(self.model, self.encoder, self.dataset, self.split, self.config_key)


def slug(s: str) -> str:
    """A file-name-safe form of a display name: e.g. ``BM25+MiniLM (rrf)`` -> ``BM25+MiniLM_rrf``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", s).strip("_")


KEY_CHARS = 12  # of config_key in a file name


def result_stem(model: str, encoder: str, dataset: str, split: str, key: str) -> str:
    """``all-MiniLM-L6-v2__dpr__scifact__test__3f9c0a1b2c4d``."""
    return "__".join(slug(x) for x in (model, encoder, dataset, split, key[:KEY_CHARS]))


def save_result(result: Result, folder: Path) -> Path:
    path = Path(folder) / f"{result.stem}.json"
    atomic_write_json(path, asdict(result))
    return path


FIELDS = {f for f in Result.__dataclass_fields__}


def load_result(path: Path) -> Result:
    data = json.loads(Path(path).read_text())
    unknown = set(data) - FIELDS
    if unknown or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: not a result file of schema {SCHEMA_VERSION} (schema {data.get('schema_version')!r}, unknown fields {sorted(unknown)})")
    return Result(**data)


def load_results(folder: Path) -> list[Result]:
    """Every result JSON in ``folder``, sorted by file name.

    Files that are not results are skipped; a result file this version cannot read is skipped
    with a warning that names it.
    """
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        if not (isinstance(data, dict) and "metrics" in data and "schema_version" in data):
            continue
        try:
            out.append(load_result(p))
        except (ValueError, TypeError) as e:
            log.warning("skipping %s", e)
    return out
