"""Reads the hand-written labelled PII fixture (``fixtures/pii_labelled.tsv``) into texts and gold spans."""

from __future__ import annotations

from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "pii_labelled.tsv"


def load() -> list[tuple[str, set[tuple[str, int, int]]]]:
    out = []
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, _, labels = line.partition("\t")
        gold: set[tuple[str, int, int]] = set()
        for label in filter(None, (x.strip() for x in labels.split("|"))):
            entity, _, value = label.partition("=")
            at = text.find(value)
            assert at >= 0, f"{value!r} not in {text!r}"
            while at >= 0:
                gold.add((entity, at, at + len(value)))
                at = text.find(value, at + 1)
        out.append((text, gold))
    return out
