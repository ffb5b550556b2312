"""docs/security.md's matrix and route table are what the code says (regenerate: python -m imts.api.docs)."""

from __future__ import annotations

import itertools

from imts.api.docs import DOC, render
from imts.core.permissions import MATRIX, ROLES


def test_security_doc_is_generated_from_the_code() -> None:
    current = DOC.read_text(encoding="utf-8")
    assert current == render(current), "docs/security.md drifted: run `python -m imts.api.docs`"


def test_the_matrix_is_a_chain_so_a_ceiling_is_the_lower_role() -> None:
    for higher, lower in itertools.pairwise(ROLES):
        assert MATRIX[lower] < MATRIX[higher], (higher, lower)
