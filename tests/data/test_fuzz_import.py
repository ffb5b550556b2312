"""Fuzzed imports: valid files of each format, truncated, bit-flipped and spliced (hypothesis).

Every case is either imported or refused with an ``InputError`` that names the file; never another
exception, a hang or a half-written version. Where a case imports, the column-wise path and the row path
agree on every row (the column-wise path must never accept what the row path would map differently).
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.data.test_ingest import _nothing_recorded

import imts.data.ingest as ingest
from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.data.versions import load_rows
from imts.store.context import Context

ROWS: list[dict[str, Any]] = [
    {
        "id": f"q{i}",
        "prompt": f"What is {i} times 3? 第{i}题",
        "response": f"{i} x 3 = {3 * i}",
        "category": "mul",
    }
    for i in range(12)
] + [
    {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "answer": "1",
    },
    {"instruction": "Add 1 and 2", "input": "", "output": "3", "n": 5},
]


def _files() -> dict[str, bytes]:
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode()
    parquet = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ROWS[:12]), parquet)
    csv = "id,prompt,response\n" + "".join(f'{r["id"]},"{r["prompt"]}",{r["response"]}\n' for r in ROWS[:12])
    return {
        "jsonl": jsonl,
        "json": json.dumps(ROWS, ensure_ascii=False, indent=1).encode(),
        "csv": csv.encode(),
        "parquet": parquet.getvalue(),
        "txt": b"first line\n\nsecond paragraph\nstill second\n",
        "jsonl.gz": gzip.compress(jsonl),
        "jsonl.zst": zstandard.ZstdCompressor().compress(jsonl),
        "csv.bz2": bz2.compress(csv.encode()),
    }


FILES = _files()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(FILES)))
    data = bytearray(FILES[kind])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "splice", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "splice":
            other = FILES[draw(st.sampled_from(sorted(FILES)))]
            start = draw(st.integers(0, len(other) - 1))
            data[at:at] = other[start : start + draw(st.integers(1, 64))]
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
    return kind, bytes(data)


NAMES = itertools.count()


def _import(
    ws: Context, f: Path, on_error: str, columnar: bool, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]] | str:
    with monkeypatch.context() as m:
        m.setattr(ingest, "COLUMNAR", columnar)
        try:
            v = import_file(ws, f, name=f"fuzz{next(NAMES)}", on_error=on_error)  # type: ignore[arg-type]
        except InputError as exc:
            assert f.name in str(exc), f"the error does not name the file: {exc}"
            return str(exc)
    rows = load_rows(ws, v)
    assert len(rows) == v.num_rows > 0
    return rows


@pytest.mark.timeout(300)
@settings(
    max_examples=400,
    deadline=10_000,
    derandomize=True,  # the same cases every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated(), on_error=st.sampled_from(["fail", "skip"]))
def test_mutated_files_import_or_are_refused_cleanly(
    ws: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[str, bytes], on_error: str
) -> None:
    kind, data = case
    f = tmp_path / f"case.{kind}"
    f.write_bytes(data)
    fast = _import(ws, f, on_error, True, monkeypatch)
    if kind in ("jsonl", "parquet", "jsonl.gz", "jsonl.zst"):  # the kinds the column-wise path reads
        assert _import(ws, f, on_error, False, monkeypatch) == fast
    if isinstance(fast, str):
        assert not any(ws.artifacts.path(".staging").iterdir())


def test_refusals_leave_nothing(ws: Context, tmp_path: Path) -> None:
    f = tmp_path / "cut.parquet"
    f.write_bytes(FILES["parquet"][: len(FILES["parquet"]) // 2])
    with pytest.raises(InputError, match=r"cut\.parquet"):
        import_file(ws, f)
    _nothing_recorded(ws)
