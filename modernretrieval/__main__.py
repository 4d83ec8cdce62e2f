"""``python -m modernretrieval COMMAND ...``: the same as the ``modernretrieval`` command."""

import sys

from modernretrieval.cli import main

sys.exit(main())
