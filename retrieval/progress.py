"""Progress bars: one per step (unit, rate, ETA), all switched off together by ``-q``.

    with bar(total=n, desc="encode scifact corpus", unit="text") as b: ...   # the step's bar
    for batch in bar(batches, desc="search scifact", unit="batch"): ...

A bar asked for while another is open (an encoder's batches inside a store's shards) does not draw a
second line: its updates move the open bar, so the step shows one bar that advances per batch.
"""

from __future__ import annotations

from tqdm.auto import tqdm

_state = {"enabled": True}
_open: list = []


def enabled() -> bool:
    return _state["enabled"]


def set_enabled(on: bool) -> None:
    _state["enabled"] = on


class _Bar(tqdm):
    def close(self):
        if _open is not None and self in _open:  # None while the interpreter shuts down
            _open.remove(self)
        super().close()


class _Forward:
    """Updates of a nested bar, passed to the open one."""

    def __init__(self, outer):
        self.outer = outer

    def update(self, n: int = 1) -> None:
        self.outer.update(n)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def bar(iterable=None, *, step: bool = False, **kw):
    """``tqdm(iterable, **kw)``, disabled when bars are off; inside an open bar, a forwarder to it
    (unless ``step``: a step's own bar, which nested ones then forward to)."""
    if iterable is None and _open and not step:
        return _Forward(_open[-1])
    kw["disable"] = kw.get("disable", False) or not enabled()
    b = _Bar(iterable, **kw)
    if iterable is None and not b.disable:
        _open.append(b)
    return b


def catch_up(b, done: int) -> None:
    """Move ``b`` to ``done`` (what nested updates did not already count)."""
    if done > b.n:
        b.update(done - b.n)
