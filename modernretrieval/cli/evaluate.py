"""Evaluate retrievers on BEIR-format data and print a leaderboard.

    modernretrieval evaluate --task beir                                  # BM25 + MiniLM DPR on SciFact test
    modernretrieval evaluate --datasets scifact,nfcorpus --models bm25,minilm,/path/to/model
    modernretrieval leaderboard results/ --baseline BM25                  # re-render tables only
    modernretrieval reproduce 'bm25-*' --max-cost cheap                   # check published figures (configs/reproductions/)
    modernretrieval list datasets

(``python evaluate.py ...`` in a checkout is the same as ``modernretrieval evaluate ...``.)
CLI flags -> RunSpec (validated here, once) -> benchmarks.pipeline.run -> typed results -> rendered tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from huggingface_hub import utils as hf_hub_utils
from transformers.utils import logging as hf_logging

from benchmarks import entries, reproduce
from benchmarks.catalog import WHAT, listing
from benchmarks.leaderboard import OUTPUTS, render_folder
from benchmarks.pipeline import run
from benchmarks.render import matrix
from benchmarks.results import Result, load_results
from benchmarks.spec import Layout, OutputConfig, RunSpec, add_spec_flags, make_spec, spec_from_args
from retrieval import logs, progress
from retrieval.beir import DataError


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    """Write the folder's tables and return this run's table as Markdown (:func:`benchmarks.leaderboard.render_folder`)."""
    return render_folder(folder, results, spec.compare, spec.output.layout)


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


def console(args: argparse.Namespace) -> None:
    """-q / -v: our log level, progress bars, and the libraries' own bars (loading weights, hub downloads)."""
    logs.setup(-1 if args.quiet else 1 if getattr(args, "verbose", False) else 0)
    progress.set_enabled(not args.quiet)
    if args.quiet:
        hf_logging.disable_progress_bar()
        hf_hub_utils.disable_progress_bars()


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    console(args)
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


# ---------------------------------------------------------------- the focused subcommands (modernretrieval leaderboard | reproduce | list)


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")


def leaderboard_main(argv: list[str] | None = None, prog: str = "modernretrieval leaderboard") -> int:
    """Re-render a folder's tables (every format) from its saved results, with significance if asked; nothing recomputed."""
    p = argparse.ArgumentParser(prog=prog, description=leaderboard_main.__doc__)
    p.add_argument("folder", help="folder of result JSONs (an evaluate --output)")
    p.add_argument("--layout", choices=get_args(Layout), default="default", help="default (per dataset) or paper (ModernBERT Table 1 columns + per-task tables) (default: default)")
    add_spec_flags(p, ("compare",))
    _quiet(p)
    args = p.parse_args(argv)
    console(args)
    spec = RunSpec(output=OutputConfig(leaderboard=args.folder, layout=args.layout, output=args.folder), compare=spec_from_args(args).compare)
    if not Path(args.folder).is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    try:
        print(render(spec, args.folder, load_results(args.folder)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def reproduce_main(argv: list[str] | None = None, prog: str = "modernretrieval reproduce") -> int:
    """Check the reproduction entries (configs/reproductions/) whose inputs are here; write and print the matrix."""
    p = argparse.ArgumentParser(prog=prog, description=reproduce_main.__doc__)
    p.add_argument("names", nargs="?", default="", help="comma-separated entry names or globs (default: every entry)")
    p.add_argument("--max-cost", choices=entries.COSTS, default="expensive", help="run only entries up to this cost class (default: expensive, i.e. all)")
    p.add_argument("--reproductions", default=str(entries.DEFAULT_DIR), metavar="DIR", help="the folder of entries (default: configs/reproductions)")
    p.add_argument("--output", default="results", help="the matrix goes to OUTPUT/reproductions/, results to OUTPUT/reproductions/results/ (default: results)")
    p.add_argument("--cache-dir", default=None, help="embedding, index and trained-model cache (default: $RETRIEVAL_CACHE or ~/.cache/modernretrieval)")
    p.add_argument("--data-dir", default=None, help="folder holding BEIR datasets by name (else $RETRIEVAL_DATA_DIR or the cache)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything")
    _quiet(p)
    args = p.parse_args(argv)
    console(args)
    spec = make_spec(output=args.output, cache_dir=args.cache_dir, data_dir=args.data_dir, no_cache=args.no_cache)
    args.reproduce = args.names
    return reproduce_matrix(args, spec)


def list_main(argv: list[str] | None = None, prog: str = "modernretrieval list") -> int:
    """Print what exists: datasets (and where each would be read from here), tasks, models, indexes or layouts."""
    p = argparse.ArgumentParser(prog=prog, description=list_main.__doc__)
    p.add_argument("what", choices=WHAT, help="what to list")
    p.add_argument("--data-dir", default=None, help="folder holding BEIR datasets by name (else $RETRIEVAL_DATA_DIR or the cache)")
    args = p.parse_args(argv)
    print(listing(args.what, make_spec(data_dir=args.data_dir)))
    return 0
