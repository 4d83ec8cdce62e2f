"""Typed results: one JSON per (model, encoder, dataset, split), written atomically, with provenance.

Results are computed and saved first; tables and plots are rendered from these files later.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from retrieval.store import atomic_write_json

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "transformers", "sentence-transformers", "pylate", "faiss-cpu", "bm25s", "pytrec-eval-terrier", "numpy", "mteb", "beir")


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
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    schema_version: int = SCHEMA_VERSION

    @property
    def stem(self) -> str:
        return result_stem(self.model, self.encoder, self.dataset, self.split)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", s).strip("_")


def result_stem(model: str, encoder: str, dataset: str, split: str) -> str:
    return "__".join(_slug(x) for x in (model, encoder, dataset, split))


def save_result(result: Result, folder: Path) -> Path:
    path = Path(folder) / f"{result.stem}.json"
    atomic_write_json(path, asdict(result))
    return path


def load_result(path: Path) -> Result:
    data = json.loads(Path(path).read_text())
    return Result(**data)


def load_results(folder: Path) -> list[Result]:
    """Every result JSON in ``folder`` (sorted by file name); files that are not results are skipped."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION and "metrics" in data:
            out.append(Result(**data))
    return out


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit(repo: Path | None = None) -> str:
    """``<sha>`` of the code that ran, with ``+dirty`` when the work tree had uncommitted changes."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def machine() -> dict[str, str]:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "platform": platform.platform()}
