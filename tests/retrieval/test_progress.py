"""One bar per step: a bar opened inside another moves it instead of drawing a second line; -q turns all off."""

from retrieval import progress


def test_nested_bar_forwards_to_the_open_one():
    progress.set_enabled(True)  # an earlier `evaluate.main(["-q", ...])` in this process may have turned bars off
    outer = progress.bar(total=10, desc="encode corpus", unit="text", step=True)
    inner = progress.bar(total=4, desc="documents", unit="text")
    assert isinstance(inner, progress._Forward)
    inner.update(4)
    inner.close()
    assert outer.n == 4
    progress.catch_up(outer, 4)  # the shard's own count adds nothing twice
    assert outer.n == 4
    progress.catch_up(outer, 10)
    assert outer.n == 10
    outer.close()
    nxt = progress.bar(total=1, step=True)
    assert not isinstance(nxt, progress._Forward)  # closed: the next bar is its own
    nxt.close()


def test_disabled_bars():
    progress.set_enabled(False)
    try:
        b = progress.bar(total=3)
        assert b.disable and not isinstance(progress.bar(total=2), progress._Forward)
        b.close()
    finally:
        progress.set_enabled(True)
