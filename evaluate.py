"""``python evaluate.py ...`` in a checkout: the same as ``modernretrieval evaluate ...`` (the code is modernretrieval/cli/evaluate.py)."""

import sys

from modernretrieval.cli.evaluate import main, parser, spec_from_args  # noqa: F401 (the names tests and users reach through this file)

if __name__ == "__main__":
    sys.exit(main())
