"""The ``modernretrieval`` command: one entry point, subcommands in the shape of ``git`` and ``mteb run``.

    modernretrieval evaluate --datasets scifact --models bm25,minilm     # every flag of `python evaluate.py`
    modernretrieval train --encoder dpr --model minilm --train-data scifact --output runs/sf
    modernretrieval leaderboard results/ --layout paper --baseline BM25  # re-render tables from saved results
    modernretrieval reproduce 'bm25-*' --max-cost cheap                  # the reproduction matrix
    modernretrieval list datasets                                        # datasets, tasks, models, indexes, layouts

``modernretrieval COMMAND --help`` lists a command's flags, grouped as ``python evaluate.py --help`` groups them.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable

from modernretrieval.cli import evaluate, train

COMMANDS: dict[str, tuple[Callable[..., int], str]] = {
    "evaluate": (evaluate.main, "evaluate retrievers on datasets and render the leaderboard (python evaluate.py)"),
    "train": (train.main, "fine-tune a DPR or ColBERT retriever (python train.py)"),
    "leaderboard": (evaluate.leaderboard_main, "re-render a results folder's tables (Markdown, CSV, LaTeX, HTML); nothing recomputed"),
    "reproduce": (evaluate.reproduce_main, "run the reproduction entries whose inputs are here; print and write the matrix"),
    "list": (evaluate.list_main, "list datasets (and where each is read from), tasks, models, indexes or layouts"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "usage: modernretrieval COMMAND [flags]\n\ncommands:\n" + "\n".join(f"  {n.ljust(width)}  {h}" for n, (_, h) in COMMANDS.items()) + \
        "\n\n'modernretrieval COMMAND --help' lists a command's flags.\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        hint = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"modernretrieval: unknown command {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + "\n\n" + usage(), end="", file=sys.stderr)
        return 2
    return COMMANDS[name][0](rest, prog=f"modernretrieval {name}")
