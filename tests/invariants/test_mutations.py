"""Every mutation of the mutation check (``tests/invariants/mutations.py``) still applies to the current code."""

from __future__ import annotations

import pytest

from tests.invariants.mutations import MUTATIONS, ROOT


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_each_mutation_applies_to_the_current_code(m):
    for file, old, _ in m.edits:
        assert (ROOT / file).read_text().count(old) == 1, (m.id, file, old)


def test_every_defect_of_issue_31_has_a_mutation():
    assert {m.id[0] for m in MUTATIONS} == set("1234567")
