"""TREC run files: ``qid Q0 docid rank score tag``, one line per hit, best first."""

from __future__ import annotations

from pathlib import Path

from retrieval.io import atomic_write_text

Run = dict[str, dict[str, float]]


def format_trec(run: Run, tag: str) -> str:
    lines = []
    for qid in run:
        ranked = sorted(run[qid].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"{qid} Q0 {did} {rank} {score:.6f} {tag}" for rank, (did, score) in enumerate(ranked, start=1)]
    return "\n".join(lines) + ("\n" if lines else "")


def write_trec(run: Run, path: Path, tag: str) -> None:
    """Write ``run`` atomically as a TREC run file (tag = system name, no spaces)."""
    atomic_write_text(path, format_trec(run, tag.replace(" ", "_")))


def read_trec(path: Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}, line {lineno}: expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}")
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run
