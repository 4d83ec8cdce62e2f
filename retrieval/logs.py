"""Console logging for the CLIs: our loggers at INFO, third-party ones at WARNING, the root logger untouched.

    setup(0)    # default: our INFO lines, everybody's warnings
    setup(-1)   # -q: warnings only, ours and theirs
    setup(1)    # -v: third-party INFO too (this one does configure the root logger)

Known-harmless library messages are dropped narrowly, by logger and message (``HARMLESS``); any
other warning still shows.
"""

from __future__ import annotations

import logging
import re
import sys

OURS = ("retrieval", "encoders", "benchmarks", "evaluate", "train", "__main__")
# Third-party loggers that log at INFO/DEBUG by default (or set their own level low).
THIRD_PARTY = ("faiss", "bm25s", "transformers", "sentence_transformers", "pylate", "mteb", "datasets", "huggingface_hub", "urllib3", "httpx", "numba", "torch", "matplotlib", "PIL", "fast_plaid")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# (logger name, message pattern): messages that read like problems but are not.
HARMLESS = (
    # faiss probes optional SIMD builds and logs the ImportError of each one it does not find
    ("faiss.loader", re.compile(r"swigfaiss_avx|Could not load library|Loading faiss|Successfully loaded faiss", re.I)),
    # BERT checkpoints (MiniLM) carry a `position_ids` buffer that transformers 5 no longer loads
    ("transformers.modeling_utils", re.compile(r"LOAD REPORT")),
)


class Harmless(logging.Filter):
    """Drops the records of ``HARMLESS``; a LOAD REPORT only when every row it lists is an UNEXPECTED ``position_ids``."""

    def __init__(self, pattern: re.Pattern):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if not self.pattern.search(msg):
            return True
        if "LOAD REPORT" in msg:
            rows = [line for line in msg.splitlines() if re.search(r"\b(UNEXPECTED|MISSING|MISMATCH|CONVERSION)\b", line) and "|" in line]
            return not rows or not all("UNEXPECTED" in r and "position_ids" in r for r in rows)
        return False


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a redirect or a test's capture made after setup included)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_handler: logging.Handler | None = None


def setup(verbosity: int = 0) -> None:
    """Configure the console once per process (calling again changes the levels)."""
    global _handler
    if _handler is None:
        _handler = _Stderr()
        _handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        for name, pattern in HARMLESS:
            logging.getLogger(name).addFilter(Harmless(pattern))
    ours = logging.INFO if verbosity >= 0 else logging.WARNING
    root = logging.getLogger()
    for name in OURS:
        logger = logging.getLogger(name)
        logger.setLevel(ours)
        if verbosity > 0:  # -v: the one handler sits on the root logger, where everybody's records arrive
            logger.removeHandler(_handler)
        elif _handler not in logger.handlers:
            logger.addHandler(_handler)
        # records still propagate: a handler the embedding program (or pytest) put on the root logger sees them too
    theirs = logging.INFO if verbosity > 0 else logging.WARNING
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(theirs)
    if verbosity > 0:
        root.setLevel(logging.INFO)
        if _handler not in root.handlers:
            root.addHandler(_handler)
