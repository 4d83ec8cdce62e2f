"""Optional dependencies: import one by name, or say which extra installs it.

    mteb = require("mteb", extra="mteb")    # ImportError naming `pip install 'modernretrieval[mteb]'`
"""

from __future__ import annotations

import importlib


def require(module: str, *, extra: str):
    """``importlib.import_module(module)``; when missing, an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is not installed; it comes with the {extra!r} extra: pip install 'modernretrieval[{extra}]' (a checkout: make install)") from e
