"""Evaluate retrievers on BEIR-format data and print a leaderboard.

    python evaluate.py --task beir                                  # BM25 + MiniLM DPR on SciFact test
    python evaluate.py --datasets scifact,nfcorpus --models bm25,minilm,/path/to/model
    python evaluate.py --leaderboard results/                       # re-render tables only
    python evaluate.py --reproduce 'bm25-*' --max-cost cheap        # check published figures (configs/reproductions/)

CLI flags -> RunSpec (validated here, once) -> benchmarks.pipeline.run -> typed results -> rendered tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from huggingface_hub import utils as hf_hub_utils
from transformers.utils import logging as hf_logging

from benchmarks import entries, reproduce
from benchmarks.catalog import WHAT, listing
from benchmarks.leaderboard import OUTPUTS, write_leaderboard, write_paper_leaderboard, write_per_query_plots
from benchmarks.pipeline import run
from benchmarks.render import matrix
from benchmarks.render.markdown import paper_markdown, to_markdown
from benchmarks.results import Result, load_results
from benchmarks.spec import RunSpec, add_spec_flags, spec_from_args
from retrieval import logs, progress
from retrieval.beir import DataError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only (ours and the libraries'), no progress bars: the table and the results path")
    p.add_argument("--list", choices=WHAT, help="print what exists (and where each dataset would be read from here), then exit")
    p.add_argument("-v", "--verbose", action="store_true", help="also the libraries' INFO messages")
    # CLI modes like --list, not run settings (argparse's optional value needs nargs, which spec fields do not have)
    g = p.add_argument_group("reproduction matrix (configs/reproductions/*.toml; benchmarks.reproduce)")
    g.add_argument("--reproduce", nargs="?", const="", metavar="NAMES", help="run the entries (comma-separated names or globs; none: all) whose inputs are here, skip the rest with the reason, print and write a ✔/✘ matrix into OUTPUT/reproductions/; exit 1 on any ✘")
    g.add_argument("--max-cost", choices=entries.COSTS, default="expensive", help="--reproduce: run only entries up to this cost class (cheap: seconds, moderate: minutes, expensive: longer; default: expensive, i.e. all)")
    g.add_argument("--reproductions", default=str(entries.DEFAULT_DIR), metavar="DIR", help="--reproduce: the folder of entries (default: configs/reproductions)")
    return p


def render(spec: RunSpec, folder: str, results: list[Result]) -> str:
    """Write the folder's tables (every saved result there) and return this run's table as Markdown.

    With ``--baseline`` also the per-query difference plots (``<folder>/per-query/``); the baseline
    is looked up among every saved result, so this run's table may compare with an earlier run's.
    """
    everything = write_leaderboard(folder, spec.compare)
    write_per_query_plots(folder, spec.compare)
    if spec.output.layout == "paper":
        write_paper_leaderboard(folder, spec.compare)
        return paper_markdown(results, compare=spec.compare, everything=everything)
    return to_markdown(results, compare=spec.compare, everything=everything)


def reproduce_matrix(args: argparse.Namespace, spec: RunSpec) -> int:
    """``--reproduce``: the matrix printed and written; 1 on any ✘, 2 on an entry that does not validate."""
    ctx = reproduce.Context(out=Path(spec.output.output) / "reproductions", data_dir=spec.data.data_dir, cache_dir=spec.output.cache_dir, no_cache=spec.output.no_cache)
    try:
        rows = reproduce.reproduce(args.reproduce, ctx, folder=Path(args.reproductions), max_cost=args.max_cost)
    except ValueError as e:  # an entry that does not validate (file and key named), a name matching no entry
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(matrix.to_markdown(rows))
    print(f"matrix in {ctx.out}/ (matrix.md, matrix.html, matrix.json)")
    return matrix.exit_code(rows)


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
    if args.reproduce is not None:
        return reproduce_matrix(args, spec)
    if spec.output.leaderboard:
        try:
            print(render(spec, spec.output.leaderboard, load_results(spec.output.leaderboard)))
        except ValueError as e:  # an unknown --baseline, results that do not share queries, a malformed per_query
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        results = run(spec)
    except (DataError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(render(spec, spec.output.output, results))
    except ValueError as e:
        print(f"error: {e}\n(the results are saved: re-render with --leaderboard {spec.output.output} and other settings)", file=sys.stderr)
        return 2
    print(f"results in {spec.output.output}/ ({', '.join(OUTPUTS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
