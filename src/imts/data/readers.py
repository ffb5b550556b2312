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
    .txt             one record {"text": ...} per non-empty line, or per blank-line-separated paragraph
    .md .html .pdf   one record per section (Markdown, HTML) or page (PDF), long ones in parts, with
                     ``source``, ``section``/``page`` and ``part`` (``data.documents``)

Any of them may be compressed with gzip, zstd, bz2 or xz: recognised by the content's magic bytes (and
by a ``.gz``/``.zst``/``.bz2``/``.xz`` suffix, which is stripped before the type is read from the name)
and decompressed as a stream; line numbers count lines of the decompressed text. A UTF-8 byte-order
mark at the start is accepted. Every failure (bad bytes, truncated or corrupt compression, a broken
Parquet footer) becomes an ``InputError`` naming the line or row where one exists, never a traceback.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import zlib
from collections.abc import Iterator
from typing import IO, Any, Literal

import fsspec
import pyarrow as pa
import zstandard

from imts.core.errors import InputError
from imts.data import documents

Record = tuple[int, dict[str, Any] | InputError]
READERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv"}
READERS |= {".parquet": "parquet", ".pq": "parquet", ".txt": "text"}
READERS |= {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".pdf": "pdf"}
# Kinds whose rows are plain text (format ``text``); the documents are chunked by ``data.documents``.
TEXT_KINDS = ("text", "markdown", "html", "pdf")
_CHUNK = 1 << 20
MAX_ELEMENT_CHARS = 64 << 20  # one element of a JSON array may be this large
BOM = b"\xef\xbb\xbf"
# Compression by file-name suffix, and by the magic bytes the compressed stream starts with.
COMPRESSED_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
COMPRESSED_SUFFIXES |= {".bz2": "bz2", ".xz": "xz"}
MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
# What a broken stream raises while it is read: turned into located ``InputError``s.
READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
READ_ERRORS += (pa.ArrowException,)


def _suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def kind_of(path: str, given: str | None = None) -> str:
    if given:
        if given not in set(READERS.values()):
            raise InputError(f"unknown file type '{given}': expected one of {sorted(set(READERS.values()))}")
        return given
    name = path
    if _suffix(name) in COMPRESSED_SUFFIXES:
        name = name[: -len(_suffix(name))]
    suffix = _suffix(name)
    if suffix not in READERS:
        known = ", ".join(sorted(READERS))
        raise InputError(
            f"unsupported file type '{suffix or '(none)'}': expected one of {known}, optionally compressed "
            f"({', '.join(sorted(COMPRESSED_SUFFIXES))}), or give --type",
            file=path,
        )
    return READERS[suffix]


def compression_of(f: IO[bytes], path: str) -> str | None:
    """The compression of an open file: by its first bytes, else by its name's suffix."""
    head = f.read(6)
    f.seek(0)
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    by_name = COMPRESSED_SUFFIXES.get(_suffix(path))
    if by_name:
        raise InputError(f"the name says {by_name} but the content is not {by_name}-compressed", file=path)
    return None


def decompressed(f: IO[bytes], compression: str | None) -> IO[bytes]:
    """``f`` read through a streaming decompressor for ``compression`` (``f`` itself when None)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.BZ2File(f, mode="rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(f, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        return io.BufferedReader(_ZstdReader(f), buffer_size=_CHUNK)
    return f


class _ZstdReader(io.RawIOBase):
    """A zstd stream of one or more frames; unlike ``stream_reader``, a truncated last frame is an error."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._out = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._ended:
            if self._d.eof and self._d.unused_data:  # the next frame began in the last chunk read
                chunk, self._d = self._d.unused_data, zstandard.ZstdDecompressor().decompressobj()
            else:
                chunk = self._f.read(1 << 16)
            if not chunk:
                if not self._d.eof:
                    raise EOFError("the zstd stream ends inside a frame")
                self._ended = True
                break
            if self._d.eof:  # the next frame starts with this chunk
                self._d = zstandard.ZstdDecompressor().decompressobj()
            self._out = self._d.decompress(chunk)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


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
    f: IO[bytes],
    kind: str,
    text_unit: Literal["line", "paragraph"] = "line",
    compression: str | None = None,
    source: str = "",
) -> Iterator[Record]:
    """Records of an open binary file of type ``kind`` (see the module docstring).

    A stream that breaks while it is read (corrupt or truncated compression, an unreadable Parquet
    file) raises ``InputError`` located after the last good record; the reader's own bad records are
    yielded as ``InputError``s.
    """
    if kind == "parquet" and compression:
        raise InputError(f"a Parquet file compresses its own pages: decompress the {compression} first")
    stream = decompressed(f, compression)
    last = 0
    try:
        if kind == "jsonl":
            records = _jsonl(stream)
        elif kind == "json":
            records = _json_array(stream)
        elif kind == "csv":
            records = _csv(stream)
        elif kind == "parquet":
            records = _parquet(stream)
        elif kind in documents.READERS:
            records = documents.read(stream, kind, source)
        else:
            records = _text(stream, text_unit)
        for record in records:
            last = record[0]
            yield record
    except READ_ERRORS as exc:
        what = f"corrupt or truncated {compression} data" if compression else "the file cannot be read"
        where = "row" if kind == "parquet" else "line"
        after = f" after {where} {last}" if last else ""
        line = last + 1 if kind != "parquet" else None
        raise InputError(f"{what}{after}: {_reason(exc)}", line=line) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _jsonl(f: IO[bytes]) -> Iterator[Record]:
    for lineno, raw in enumerate(f, start=1):
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as exc:
            yield lineno, InputError(f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        except UnicodeDecodeError as exc:
            yield lineno, InputError(f"not UTF-8 text: {exc.reason} (byte {exc.start + 1} of the line)")
            continue
        except RecursionError:
            yield lineno, InputError("malformed JSON: nested too deeply")
            continue
        yield lineno, value if isinstance(value, dict) else InputError(_not_object(value))


def _not_object(value: Any) -> str:
    return f"expected a JSON object, got {type(value).__name__}"


def _json_array(f: IO[bytes]) -> Iterator[Record]:
    """Elements of a top-level JSON array, decoded one at a time from a sliding text buffer."""
    decoder = json.JSONDecoder()
    text = io.TextIOWrapper(f, encoding="utf-8-sig")
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
            except RecursionError:
                raise InputError("malformed JSON: nested too deeply", line=line) from None
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
    try:
        pf = pq.ParquetFile(f)
    except READ_ERRORS as exc:
        raise InputError(f"not a readable Parquet file: {_reason(exc)}") from None
    try:
        for batch in pf.iter_batches(batch_size=5_000):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except READ_ERRORS as exc:
        raise InputError(f"corrupt Parquet data after row {n}: {_reason(exc)}") from None


def _text(f: IO[bytes], unit: str) -> Iterator[Record]:
    para: list[str] = []
    start = 0
    for lineno, raw in enumerate(f, start=1):
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
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
