"""Evaluate retrievers on BEIR-format data and print a leaderboard.

    python evaluate.py --task beir                                  # BM25 + MiniLM DPR on SciFact test
    python evaluate.py --datasets scifact,nfcorpus --models bm25,minilm,/path/to/model
    python evaluate.py --leaderboard results/                       # re-render tables only

CLI flags -> RunSpec (validated here, once) -> benchmarks.pipeline.run -> typed results -> rendered tables.
"""

from __future__ import annotations

import argparse
import sys

from huggingface_hub import utils as hf_hub_utils
from transformers.utils import logging as hf_logging

from benchmarks.catalog import WHAT, listing
from benchmarks.leaderboard import paper_markdown, to_markdown, write_leaderboard, write_paper_leaderboard
from benchmarks.pipeline import run
from benchmarks.results import Result
from benchmarks.spec import RunSpec, add_spec_flags, spec_from_args
from retrieval import logs, progress
from retrieval.beir import DataError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only (ours and the libraries'), no progress bars: the table and the results path")
    p.add_argument("--list", choices=WHAT, help="print what exists (and where each dataset would be read from here), then exit")
    p.add_argument("-v", "--verbose", action="store_true", help="also the libraries' INFO messages")
    return p


def render(spec: RunSpec, folder: str, results: list[Result]) -> str:
    """Write the folder's tables (every saved result there) and return this run's table as Markdown."""
    write_leaderboard(folder)
    if spec.output.layout == "paper":
        write_paper_leaderboard(folder)
        return paper_markdown(results)
    return to_markdown(results)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logs.setup(-1 if args.quiet else 1 if args.verbose else 0)
    progress.set_enabled(not args.quiet)
    if args.quiet:  # the libraries' own bars (loading weights, hub downloads)
        hf_logging.disable_progress_bar()
        hf_hub_utils.disable_progress_bars()
    try:
        spec = spec_from_args(args)  # the one validation of every setting
    except ValueError as e:
        p.error(str(e))
    if args.list:
        print(listing(args.list, spec))
        return 0
    if spec.output.leaderboard:
        print(render(spec, spec.output.leaderboard, write_leaderboard(spec.output.leaderboard)))
        return 0
    try:
        results = run(spec)
    except (DataError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(spec, spec.output.output, results))
    print(f"results in {spec.output.output}/ (leaderboard.md, leaderboard.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
