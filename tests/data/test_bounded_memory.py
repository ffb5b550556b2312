"""Import, dedup, split and export stream: Python memory does not grow with the number of rows.

Each operation runs on a version of N and of 4N rows with small batches; the peak of Python
allocations (tracemalloc) must stay the same (within 200 kB). Holding the rows (as dedup, split and
export once did) makes it grow about fourfold. DuckDB's working memory is bounded separately by its
``memory_limit`` (``scratch.MEMORY_LIMIT``), checked at the end.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.conftest import write_jsonl

import imts.data.ingest as ingest
import imts.data.versions as versions
from imts.data import parallel, scratch
from imts.data.cleaning import dedup_version
from imts.data.export import to_hf
from imts.data.ingest import import_file
from imts.data.split import split_version
from imts.store.workspace import Workspace

N = 300


def _peak(fn: Callable[[], Any], traced: bool = True) -> tuple[int, Any]:
    if not traced:
        return 0, fn()
    tracemalloc.start()
    try:
        out = fn()
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


def test_operations_run_in_memory_independent_of_rows(
    ws: Workspace, tmp_path: Path, mathgen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versions, "BATCH_ROWS", 60)
    monkeypatch.setattr(ingest, "CHUNK", 60)
    monkeypatch.setattr(parallel, "LOCAL_PIECE_ROWS", 60)  # dedup hashes a version piece by piece
    rows, _ = mathgen.generate(n=4 * N, seed=1)
    peaks: dict[str, list[int]] = {"import": [], "dedup": [], "split": [], "hf": []}
    for n in (50, N, 4 * N):  # the first, small round (untraced) imports the modules the operations use
        f, t = write_jsonl(tmp_path / f"rows{n}.jsonl", rows[:n]), n > 50
        peak, v = _peak(lambda f=f, n=n: import_file(ws, f, name=f"d{n}"), t)
        peaks["import"].append(peak)
        peak, _ = _peak(lambda v=v: dedup_version(ws, v, threshold=0.7), t)
        peaks["dedup"].append(peak)
        peak, s = _peak(lambda v=v: split_version(ws, v, seed=0, near_threshold=0.7), t)
        peaks["split"].append(peak)
        peak, hf = _peak(lambda s=s: to_hf(ws, s), t)
        peaks["hf"].append(peak)
        assert len(hf) == s.num_rows
    print({op: [round(p / 1e6, 2) for p in v] for op, v in peaks.items()})
    for op, (_, small, large) in peaks.items():
        assert large < 1.5 * small, (
            f"{op}: peak {small / 1e6:.1f} MB for {N} rows, {large / 1e6:.1f} MB for {4 * N}"
        )
    con = scratch.connect(tmp_path)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "244.1 MiB"
    con.close()
