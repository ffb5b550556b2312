"""MinHash/LSH near-duplicates: the planted duplicates of the example generator are found."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tests.conftest import write_jsonl

from imts.core.errors import InputError
from imts.data import dedup
from imts.data.cleaning import dedup_version
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.data.versions import load_rows
from imts.store.workspace import Workspace


def test_minhash_estimates_jaccard() -> None:
    words = [f"w{i}" for i in range(200)]
    a, b = " ".join(words[:150]), " ".join(words[50:])  # unigram Jaccard 100/200 = 0.5
    h = dedup.MinHasher(num_perm=256, shingle=1)
    sig = h.signatures([a, b])
    assert sig.shape == (2, 256) and sig.dtype == np.uint32
    assert abs((sig[0] == sig[1]).mean() - 0.5) < 0.1
    assert (h.signatures([a])[0] == sig[0]).all()  # deterministic


def test_optimal_bands_match_the_threshold() -> None:
    b, r = dedup.optimal_bands(0.7, 128)
    assert b * r <= 128 and abs((1 / b) ** (1 / r) - 0.7) < 0.1
    with pytest.raises(InputError):
        dedup.optimal_bands(1.5, 128)


def test_planted_duplicates_found(mathgen: ModuleType) -> None:
    rows, manifest = mathgen.generate(n=2000, seed=3)
    texts = [r["prompt"] for r in rows]
    found = {rows[i]["id"] for i in dedup.near_duplicates(texts, threshold=0.7)}
    planted = {d for d, _ in manifest["near_duplicates"]} | {d for d, _ in manifest["exact_duplicates"]}
    tp = len(found & planted)
    assert tp / len(planted) >= 0.95, f"recall {tp / len(planted):.3f}"
    assert tp / len(found) >= 0.95, f"precision {tp / len(found):.3f}"


def test_dedup_version_and_near_decontamination(ws: Workspace, tmp_path: Path, mathgen: ModuleType) -> None:
    rows, manifest = mathgen.generate(n=600, seed=5)
    v = import_file(ws, write_jsonl(tmp_path / "m.jsonl", rows), name="m")
    d = dedup_version(ws, v, threshold=0.7)
    rep = d.report
    assert rep["exact_removed"] >= len(manifest["exact_duplicates"])
    assert rep["rows_out"] == d.num_rows == v.num_rows - rep["exact_removed"] - rep["near_removed"]
    near_ids = {x for x, _ in manifest["near_duplicates"]}
    assert len(near_ids - {r["id"] for r in load_rows(ws, d)}) >= 0.9 * len(near_ids)
    assert d.parents == [v.id] and d.operation == "dedup" and rep["examples"]
    exact_only = dedup_version(ws, v, threshold=None)
    assert exact_only.report["near_removed"] == 0
    # The split on the raw version catches near-duplicates of train in val/test that 13-grams miss.
    s = split_version(ws, v, (0.6, 0.2, 0.2), seed=0, near_threshold=0.7)
    removed = s.report["val"]["near_removed"] + s.report["test"]["near_removed"]
    assert removed > 0
    assert any(
        e["reason"] == "near-duplicate" for e in s.report["test"]["examples"] + s.report["val"]["examples"]
    )
