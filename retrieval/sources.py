"""Find BEIR datasets by name: where they live on this machine, or BEIR's public zip.

Resolution order for a name (first hit wins):
  1. ``--data-dir DIR``  -> ``DIR/<name>``
  2. ``$RETRIEVAL_DATA_DIR/<name>``
  3. the local cache ``$RETRIEVAL_CACHE/datasets/<name>`` (default ``~/.cache/modernretrieval``)
  4. BEIR's public zip, downloaded into the cache and checked against its published md5.

A path (anything containing a path separator, or an existing folder) is used as-is.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
DATA_DIR_ENV = "RETRIEVAL_DATA_DIR"
CACHE_ENV = "RETRIEVAL_CACHE"


# BEIR's published zips and their md5 (BEIR README). CoSQA in the CoSQA paper's retrieval setting is
# not on BEIR's server: it resolves locally only.
BEIR_MD5: dict[str, str] = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "quora": "18fb154900ba42a600f84b839c173167",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
}
LOCAL_ONLY = ("cosqa",)  # known names with no public zip


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "modernretrieval"))


def _is_beir_folder(p: Path) -> bool:
    return (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file() and (p / "qrels").is_dir()


def resolve(name_or_path: str, data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Return the folder of a dataset given by name or path (see the module docstring for the order)."""
    p = Path(name_or_path).expanduser()
    if os.sep in name_or_path or p.is_dir():
        if not _is_beir_folder(p):
            raise FileNotFoundError(f"{p}: not a BEIR folder (needs corpus.jsonl, queries.jsonl and qrels/)")
        return p
    name = name_or_path
    candidates: list[tuple[str, Path]] = []
    if data_dir:
        candidates.append(("--data-dir", Path(data_dir) / name))
    if os.environ.get(DATA_DIR_ENV):
        candidates.append((f"${DATA_DIR_ENV}", Path(os.environ[DATA_DIR_ENV]) / name))
    candidates.append(("cache", cache_dir() / "datasets" / name))
    for _, c in candidates:
        if _is_beir_folder(c):
            return c
    looked = ", ".join(f"{src}: {c}" for src, c in candidates)
    known = sorted((*BEIR_MD5, *LOCAL_ONLY))
    if name.lower() not in known:
        hint = difflib.get_close_matches(name.lower(), known, n=3)
        raise FileNotFoundError(
            f"dataset {name!r} not found ({looked}) and not a known BEIR name"
            + (f"; did you mean {', '.join(hint)}?" if hint else f"; known names: {', '.join(known)}")
        )
    if name.lower() not in BEIR_MD5 or not download:
        raise FileNotFoundError(f"dataset {name!r} not found ({looked}); pass --data-dir or set ${DATA_DIR_ENV}")
    return download_beir(name.lower(), cache_dir() / "datasets")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def download_beir(name: str, root: Path) -> Path:
    """Download BEIR's zip for ``name``, verify its published md5, and unpack it atomically into ``root/<name>``."""
    url = BEIR_URL.format(name=name)
    md5 = BEIR_MD5[name]
    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s", url)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        zpath = Path(tmp) / f"{name}.zip"
        try:
            urllib.request.urlretrieve(url, zpath)
        except OSError as e:
            raise FileNotFoundError(
                f"dataset {name!r} is not available locally and downloading {url} failed ({e}). "
                f"Offline? Put the BEIR folder under --data-dir or ${DATA_DIR_ENV}."
            ) from None
        got = _md5(zpath)
        if got != md5:
            raise ValueError(f"{url}: md5 {got} does not match BEIR's published {md5}; refusing to use it")
        with zipfile.ZipFile(zpath) as z:
            for m in z.namelist():  # refuse absolute paths and ".." in archive members
                if m.startswith("/") or ".." in Path(m).parts:
                    raise ValueError(f"{url}: unsafe archive member {m!r}")
            z.extractall(tmp)
        src = Path(tmp) / name
        dst = root / name
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(src, dst)
    return dst
