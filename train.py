"""``python train.py ...`` in a checkout: the same as ``modernretrieval train ...`` (the code is modernretrieval/cli/train.py)."""

import sys

from modernretrieval.cli.train import build_parser, load_recipe, main, parse  # noqa: F401 (the names tests and users reach through this file)

if __name__ == "__main__":
    sys.exit(main())
