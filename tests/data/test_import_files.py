"""Import of the files people have: byte-order marks, gzip/zstd/bz2/xz, broken files, mixed formats.

Also: the column-wise path (``columnar``) and the row path give identical versions.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from tests.data.test_ingest import _nothing_recorded

import imts.data.ingest as ingest
from imts.core.errors import InputError
from imts.data.ingest import import_file
from imts.data.versions import load_rows
from imts.store.context import Context

ROWS = [
    {"id": f"r{i}", "prompt": f"What is {i} + 1?", "response": f"{i} + 1 = {i + 1}.", "category": "add"}
    for i in range(40)
]
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress,
    "zst": zstandard.ZstdCompressor().compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
}


def _encode(kind: str, rows: list[dict[str, Any]]) -> bytes:
    if kind == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if kind == "json":
        return json.dumps(rows, ensure_ascii=False, indent=1).encode()
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("ext", list(COMPRESS))
@pytest.mark.parametrize("kind", ["jsonl", "json", "csv"])
def test_compressed_files_by_name_and_by_content(ws: Context, tmp_path: Path, kind: str, ext: str) -> None:
    data = COMPRESS[ext](_encode(kind, ROWS))
    named = tmp_path / f"d.{kind}.{ext}"
    named.write_bytes(data)
    v = import_file(ws, named)
    assert v.dataset == "d" and v.num_rows == 40 and v.params["compression"] in ("gzip", "zstd", "bz2", "xz")
    assert load_rows(ws, v)[3]["messages"][0]["content"] == "What is 3 + 1?"
    unnamed = tmp_path / f"e.{kind}"  # the name does not say it: the magic bytes do
    unnamed.write_bytes(data)
    assert import_file(ws, unnamed).num_rows == 40


@pytest.mark.parametrize("ext", list(COMPRESS))
def test_compressed_errors_point_into_the_decompressed_lines(ws: Context, tmp_path: Path, ext: str) -> None:
    lines = _encode("jsonl", ROWS).splitlines(keepends=True)
    lines[29] = b'{"prompt": "broken",\n'
    bad = tmp_path / f"bad.jsonl.{ext}"
    bad.write_bytes(COMPRESS[ext](b"".join(lines)))
    with pytest.raises(InputError, match=rf"bad\.jsonl\.{ext}:30: malformed JSON"):
        import_file(ws, bad)
    many = [{**r, "id": f"{r['id']}-{k}"} for k in range(50) for r in ROWS]
    whole = COMPRESS[ext](_encode("jsonl", many))
    cut = tmp_path / f"cut.jsonl.{ext}"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=rf"cut\.jsonl\.{ext}:\d+: corrupt or truncated \w+ data"):
        import_file(ws, cut)
    _nothing_recorded(ws)


def test_byte_order_marks_are_accepted(ws: Context, tmp_path: Path) -> None:
    for kind in ("jsonl", "json", "csv"):
        f = tmp_path / f"bom.{kind}"
        f.write_bytes(b"\xef\xbb\xbf" + _encode(kind, ROWS))
        assert import_file(ws, f, name=f"bom-{kind}").num_rows == 40
    text = tmp_path / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbfhello\nworld\n")
    assert [r["text"] for r in load_rows(ws, import_file(ws, text))] == ["hello", "world"]


def test_broken_files_name_the_file_and_the_problem(ws: Context, tmp_path: Path) -> None:
    cases = {
        "trunc.parquet": (b"PAR1" + b"\x00garbage" * 20, r"trunc\.parquet: not a readable Parquet file"),
        "notjson.json": (b"hello there\n", r"notjson\.json:1: expected a JSON array"),
        "unclosed.json": (b'[{"prompt": "a", "response": "b"},\n', r"unclosed\.json:2: unexpected end"),
        "fake.jsonl.gz": (_encode("jsonl", ROWS), r"fake\.jsonl\.gz: the name says gzip but the content"),
        "deep.jsonl": (b"[" * 100_000 + b"\n", r"deep\.jsonl:1: malformed JSON: nested too deeply"),
        "surrogate.jsonl": (
            b'{"prompt": "a\\ud800", "response": "b"}\n',
            r"surrogate\.jsonl:1, field 'prompt': the text holds an invalid character",
        ),
    }
    for name, (content, expected) in cases.items():
        f = tmp_path / name
        f.write_bytes(content)
        with pytest.raises(InputError, match=expected):
            import_file(ws, f)
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS * 100), good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"cut\.parquet: not a readable Parquet file"):
        import_file(ws, cut)
    _nothing_recorded(ws)


CHAT = {
    "messages": [
        {"role": "user", "content": "How many legs do 3 spiders have?"},
        {"role": "assistant", "content": "Each spider has 8 legs: 3 x 8 = 24, counting all 3 spiders."},
    ],
    "answer": "24",
}
ALPACA = {"instruction": "Add 2 and 3", "input": "", "output": "2 + 3 = 5", "answer": "5"}


def test_mixed_sft_formats_are_mapped_per_row(ws: Context, tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [CHAT, ALPACA, CHAT, ALPACA, ALPACA]))
    v = import_file(ws, f)
    assert v.num_rows == 5 and v.format == "sft"
    assert v.report["row_formats"] == {
        "chat: messages<-messages, answer<-answer": 2,
        "prompt_response: prompt<-instruction, response<-output, context<-input, answer<-answer": 3,
    }
    rows = load_rows(ws, v)
    assert [r["answer"] for r in rows] == ["24", "5", "24", "5", "5"]  # chat rows keep their answer
    assert rows[1]["messages"][0]["content"] == "Add 2 and 3"


def test_a_row_of_another_dataset_format_says_what_was_detected(ws: Context, tmp_path: Path) -> None:
    f = tmp_path / "pref.jsonl"
    pref = {"prompt": "p", "chosen": "a", "rejected": "b"}
    f.write_text(json.dumps(CHAT) + "\n" + json.dumps(pref) + "\n" + json.dumps({"foo": 1}) + "\n")
    with pytest.raises(InputError) as info:
        import_file(ws, f)
    assert str(info.value).startswith("pref.jsonl:2") or ":2, field 'messages'" in str(info.value)
    assert "this row is preference" in str(info.value) and "detected from line 1" in str(info.value)
    v = import_file(ws, f, on_error="skip")
    assert v.num_rows == 1 and v.report["skipped"] == 2
    reasons = v.report["skipped_by_reason"]
    assert sum(reasons.values()) == 2 and any("fits no known format" in r for r in reasons)


def _both_paths(ws: Context, f: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = import_file(ws, f, name="fast")
    with monkeypatch.context() as m:
        m.setattr(ingest, "COLUMNAR", False)
        slow = import_file(ws, f, name="slow")
    return fast, slow


def test_column_wise_and_row_paths_give_the_same_version(
    ws: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[dict[str, Any]] = [
        {**r, "source": "s", "n": i, "flag": i % 2 == 0, "note": None} for i, r in enumerate(ROWS)
    ]
    rows += [
        {"id": "zh", "prompt": "把这句话翻译成英文：你好世界", "response": '"Hi\tyou"\n\\ ok', "lang": ""},
        {"id": 7, "prompt": "no category", "response": "42", "answer": "42", "extra": 'a\\b"c'},
        {"prompt": "no id, hashed", "response": "ok", "category": None},
    ]
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    calls: list[str] = []
    real = ingest._ingest_columnar
    monkeypatch.setattr(ingest, "_ingest_columnar", lambda *a, **k: calls.append("fast") or real(*a, **k))
    fast, slow = _both_paths(ws, f, monkeypatch)
    assert calls == ["fast"] and fast.report["rows"] == len(rows)
    assert load_rows(ws, fast) == load_rows(ws, slow) and fast.stats == slow.stats
    assert fast.content_hash == slow.content_hash
    zh = next(r for r in load_rows(ws, fast) if r["id"] == "zh")
    assert zh["lang"] == "zh" and zh["meta"] is None
    pqf = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "note"} for r in ROWS]), pqf)
    fast, slow = _both_paths(ws, pqf, monkeypatch)
    assert load_rows(ws, fast) == load_rows(ws, slow) and fast.stats == slow.stats


def test_a_bad_row_late_in_a_file_is_located_after_the_column_wise_try(
    ws: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.columnar, "BLOCK_BYTES", 256)  # many blocks: the bad one comes late
    lines = _encode("jsonl", ROWS).decode().splitlines(keepends=True)
    lines[35] = json.dumps({"id": "x", "prompt": "  ", "response": "b"}) + "\n"
    lines[37] = json.dumps({"id": "r1", "prompt": "dup", "response": "b"}) + "\n"
    f = tmp_path / "late.jsonl"
    f.write_text("".join(lines))
    with pytest.raises(InputError, match=r"late\.jsonl:36, field 'prompt': empty text"):
        import_file(ws, f)
    _nothing_recorded(ws)
    v = import_file(ws, f, on_error="skip")
    assert v.num_rows == 38 and [e["line"] for e in v.report["errors"]] == [36, 38]
    assert "duplicate id 'r1' (first on line 2)" in v.report["errors"][1]["reason"]
