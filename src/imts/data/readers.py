"""Streaming readers of source files: each yields ``(line, record)`` one record at a time.

``line`` is the 1-based line of the record in the file (JSONL, JSON, CSV, text) or its 1-based row
number (Parquet, SQL results). A record that cannot be parsed is yielded as an ``InputError`` instead of
a dict, so the caller applies the fail/skip policy in one place. Files are opened through fsspec, so
``s3://bucket/key`` (and any other fsspec URL) reads the same way as a local path.

Formats and what one record is:

    .jsonl/.ndjson   one JSON object per line
    .json            a JSON array of objects (parsed incrementally, one element in memory at a time)
    .csv/.tsv        one row per record, the header names the fields (all values are text)
    .parquet         one row per record, read in batches of 5,000 rows
    .txt/.md         one record {"text": ...} per non-empty line, or per blank-line-separated paragraph
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any, Literal

import fsspec

from imts.core.errors import InputError

Record = tuple[int, dict[str, Any] | InputError]
READERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv"}
READERS |= {".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".md": "text"}
_CHUNK = 1 << 20
MAX_ELEMENT_CHARS = 64 << 20  # one element of a JSON array may be this large


def kind_of(path: str, given: str | None = None) -> str:
    if given:
        if given not in set(READERS.values()):
            raise InputError(f"unknown file type '{given}': expected one of {sorted(set(READERS.values()))}")
        return given
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if suffix not in READERS:
        raise InputError(
            f"unsupported file type '{suffix or '(none)'}': expected one of {', '.join(sorted(READERS))}",
            file=path,
        )
    return READERS[suffix]


def open_source(path: str, storage_options: dict[str, Any] | None = None) -> tuple[IO[bytes], int]:
    """A binary file object for a local path or fsspec URL, and its size in bytes."""
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        size = int(fs.size(fs_path) or 0)
        return fs.open(fs_path, "rb"), size
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open: {exc}", file=path) from None


def read_records(
    f: IO[bytes], kind: str, text_unit: Literal["line", "paragraph"] = "line"
) -> Iterator[Record]:
    """Records of an open binary file of type ``kind`` (see the module docstring)."""
    if kind == "jsonl":
        yield from _jsonl(f)
    elif kind == "json":
        yield from _json_array(f)
    elif kind == "csv":
        yield from _csv(f)
    elif kind == "parquet":
        yield from _parquet(f)
    else:
        yield from _text(f, text_unit)


def _jsonl(f: IO[bytes]) -> Iterator[Record]:
    for lineno, raw in enumerate(f, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as exc:
            yield lineno, InputError(f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        except UnicodeDecodeError as exc:
            yield lineno, InputError(f"not UTF-8 text: {exc.reason}")
            continue
        yield lineno, value if isinstance(value, dict) else InputError(_not_object(value))


def _not_object(value: Any) -> str:
    return f"expected a JSON object, got {type(value).__name__}"


def _json_array(f: IO[bytes]) -> Iterator[Record]:
    """Elements of a top-level JSON array, decoded one at a time from a sliding text buffer."""
    decoder = json.JSONDecoder()
    text = io.TextIOWrapper(f, encoding="utf-8")
    buf, pos, line, started = "", 0, 1, False
    while True:
        # Skip whitespace and separators, refilling the buffer as needed.
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf):
                break
            chunk = _read(text, line)
            if not chunk:
                if not started:
                    raise InputError("the file holds no JSON array", line=line)
                raise InputError("unexpected end of file: the JSON array is not closed", line=line)
            buf, pos = buf[pos:] + chunk, 0
        if not started:
            if buf[pos] != "[":
                raise InputError("expected a JSON array of objects ('[' first)", line=line)
            started, pos = True, pos + 1
            continue
        if buf[pos] == "]":
            return
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                # Incomplete element: read more, up to a cap, so a malformed element never makes us
                # read the rest of a large file into memory.
                chunk = _read(text, line) if len(buf) - pos < MAX_ELEMENT_CHARS else ""
                if not chunk:
                    raise InputError(f"malformed JSON: {exc.msg}", line=exc.lineno - 1 + line) from None
                buf = buf[pos:] + chunk
                pos = 0
        yield line, value if isinstance(value, dict) else InputError(_not_object(value))
        line += buf.count("\n", pos, end)
        pos = end
        if pos > _CHUNK:
            buf, pos = buf[pos:], 0


def _read(text: io.TextIOWrapper, line: int) -> str:
    try:
        return text.read(_CHUNK)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", line=line) from None


def _csv(f: IO[bytes]) -> Iterator[Record]:
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    head = text.readline()
    if not head.strip():
        return
    dialect = (
        csv.Sniffer().sniff(head, delimiters=",\t;|") if head.count("\t") or head.count(";") else "excel"
    )
    header = next(csv.reader([head], dialect=dialect))
    reader = csv.reader(text, dialect=dialect)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield reader.line_num + 1, InputError(f"malformed CSV: {exc}")
            continue
        if not values:
            continue
        if len(values) != len(header):
            yield reader.line_num + 1, InputError(f"{len(values)} columns, the header has {len(header)}")
            continue
        yield reader.line_num + 1, dict(zip(header, values, strict=True))


def _parquet(f: IO[bytes]) -> Iterator[Record]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(f).iter_batches(batch_size=5_000):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _text(f: IO[bytes], unit: str) -> Iterator[Record]:
    para: list[str] = []
    start = 0
    for lineno, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield lineno, InputError(f"not UTF-8 text: {exc.reason}")
            continue
        if unit == "line":
            if line.strip():
                yield lineno, {"text": line}
        elif line.strip():
            start = start or lineno
            para.append(line)
        elif para:
            yield start, {"text": "\n".join(para)}
            para, start = [], 0
    if para:
        yield start, {"text": "\n".join(para)}
