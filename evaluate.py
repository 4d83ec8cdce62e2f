"""Evaluate retrievers on BEIR-format data and print a leaderboard.

    python evaluate.py --task beir                                  # BM25 + MiniLM DPR on SciFact test
    python evaluate.py --datasets scifact,nfcorpus --models bm25,minilm,/path/to/model
    python evaluate.py --leaderboard results/                       # re-render tables only

CLI flags -> EvalConfig -> benchmarks.runner.run -> result JSONs -> leaderboard.
"""

from __future__ import annotations

import argparse
import logging
import sys

from benchmarks.config import EvalConfig, add_flags, from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser, EvalConfig)
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = from_args(args, EvalConfig)

    from benchmarks.data import DataError
    from benchmarks.leaderboard import paper_markdown, to_markdown, write_leaderboard, write_paper_leaderboard

    if cfg.layout not in ("default", "paper"):
        print(f"error: unknown --layout {cfg.layout!r}; choose default or paper", file=sys.stderr)
        return 2
    render = paper_markdown if cfg.layout == "paper" else to_markdown
    if cfg.leaderboard:
        results = write_leaderboard(cfg.leaderboard)
        if cfg.layout == "paper":
            write_paper_leaderboard(cfg.leaderboard)
        print(render(results))
        return 0
    from benchmarks.runner import run

    try:
        results = run(cfg)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.layout == "paper":
        write_paper_leaderboard(cfg.output)
    print(render(results))
    print(f"results in {cfg.output}/ (leaderboard.md, leaderboard.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
