"""Progress bars: one per step (unit, rate, ETA), all switched off together by ``-q``.

    for batch in bar(batches, desc="search scifact", unit="batch"): ...
"""

from __future__ import annotations

from tqdm.auto import tqdm

_state = {"enabled": True}


def enabled() -> bool:
    return _state["enabled"]


def set_enabled(on: bool) -> None:
    _state["enabled"] = on


def bar(iterable=None, **kw):
    """``tqdm(iterable, **kw)``, disabled when bars are off (or when the caller disables it)."""
    kw["disable"] = kw.get("disable", False) or not enabled()
    return tqdm(iterable, **kw)
