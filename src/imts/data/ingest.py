"""Import a user's data as a new dataset version: files (local or fsspec URLs such as ``s3://``) and SQL.

Sources are streamed: records are read, validated and mapped in chunks of ``CHUNK`` and written in
batches of ``versions.BATCH_ROWS`` rows (see ``shards`` for the memory bound). Every bad record is
reported with file, line and reason. With ``on_error="fail"`` (the default) the first bad record
aborts the import; with ``"skip"`` bad records are left out and listed in the version's report.
Either way nothing is recorded unless the whole import succeeds (see ``versions.commit_version``).

JSONL and Parquet files of prompt/response rows are first imported column-wise (``columnar``); at the
first row that path cannot take exactly as the row path would, it stops, nothing is recorded, and the
file is read again row by row, which locates the bad line. Rows of several SFT mappings may be mixed in
one file (``RowMapper``).

Ids: a source ``id`` field is kept and must be unique (checked exactly through ``IdIndex``, a SQLite
table on disk in the import's scratch folder, so it costs no memory per row); rows without one get a
content hash. Memory is therefore the same for a 5 GB file as for a 5 MB one (see ``shards``).
"""

from __future__ import annotations

import gc
import itertools
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imts.core.errors import InputError
from imts.core.hashing import sha256_json
from imts.core.progress import NullProgress, Progress
from imts.data import columnar, merge, scratch
from imts.data.formats import FieldMap
from imts.data.readers import (
    COMPRESSED_SUFFIXES,
    TEXT_KINDS,
    Record,
    compression_of,
    decompressed,
    kind_of,
    open_source,
    read_records,
)
from imts.data.schemas import DATASET_FORMAT, canonical, describe, detect_any
from imts.data.versions import VersionInfo, batched, commit_version
from imts.store.context import Context

MAX_REPORTED_ERRORS = 100
CHUNK = 5_000  # records validated (and their ids checked) together
OnError = Literal["fail", "skip"]
ID_CHECK_MEMORY = "64MB"  # DuckDB's memory for the column-wise id check; beyond it, it spills to disk
COLUMNAR = True  # try the column-wise path (``columnar``) first; the tests turn it off to compare


@dataclass
class ImportReport:
    file: str
    mapping: str = ""
    format: str = ""
    rows: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Rows per mapping (a file may mix formats of one dataset format), and skipped rows per reason.
    row_formats: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


def import_file(
    ctx: Context,
    path: Path | str,
    name: str | None = None,
    mapping: FieldMap | None = None,
    on_error: OnError = "fail",
    progress: Progress | None = None,
    *,
    file_type: str | None = None,
    text_unit: Literal["line", "paragraph"] = "line",
    storage_options: dict[str, Any] | None = None,
    append: bool = False,
    shown_as: str | None = None,
) -> VersionInfo:
    """Import a JSONL/JSON/CSV/Parquet/text file (a path or an fsspec URL) as a new version of ``name``.

    Args:
        append: the new version holds the dataset's latest rows followed by the file's (``merge``).
        shown_as: names the file in errors, the default dataset name and the version's params instead
            of ``path`` (an uploaded file: the name the user uploaded, not the server's copy).
    """
    progress = progress or NullProgress()
    source = str(path)
    local = "://" not in source
    if local and not Path(source).is_file():
        raise InputError("no such file", file=shown_as or source)
    shown = shown_as or source
    kind = kind_of(shown, file_type)
    try:
        f, size = open_source(source, storage_options)
    except InputError as exc:
        raise InputError(exc.reason, file=shown) from None
    if size == 0:
        f.close()
        raise InputError("the file is empty: no rows to import", file=shown)
    try:
        compression = compression_of(f, shown)
    except BaseException:
        f.close()
        raise
    if kind in TEXT_KINDS and not (mapping and mapping.format):
        mapping = FieldMap(**{**(mapping or FieldMap()).__dict__, "format": "text"})
    base = shown.rstrip("/").rsplit("/", 1)[-1]
    for suffix in COMPRESSED_SUFFIXES:
        base = base.removesuffix(suffix)
    stem = base.rsplit(".", 1)[0]
    params = {
        "file": shown if shown_as else str(Path(source).resolve()) if local else source,
        "type": kind,
        "on_error": on_error,
        **({"text_unit": text_unit} if kind == "text" else {}),
        **({"compression": compression} if compression else {}),
    }
    with f, progress.task(f"reading {stem}", total=size) as task:

        def advance() -> None:
            try:
                pos = f.tell()
            except (OSError, ValueError):
                return
            task.advance(pos - advance.done)  # type: ignore[attr-defined]
            advance.done = pos  # type: ignore[attr-defined]

        advance.done = 0  # type: ignore[attr-defined]
        if (
            COLUMNAR
            and not append
            and kind in ("jsonl", "parquet")
            and not (kind == "parquet" and compression)
        ):
            try:
                with _fewer_collections():
                    stream = decompressed(f, compression)
                    return _ingest_columnar(ctx, stream, kind, shown, name or stem, mapping, params, advance)
            except columnar.Unsupported:
                # A bad or unusual row somewhere: nothing was recorded; read again row by row, which
                # says where and why (or maps the unusual row).
                f.seek(0)
                task.advance(-advance.done)  # type: ignore[attr-defined]
                advance.done = 0  # type: ignore[attr-defined]
        return _ingest(
            ctx,
            read_records(f, kind, text_unit, compression, source=shown.rstrip("/").rsplit("/", 1)[-1]),
            shown,
            name or stem,
            mapping,
            on_error,
            params,
            advance,
            append,
        )


def import_query(
    ctx: Context,
    url: str,
    query: str,
    name: str,
    mapping: FieldMap | None = None,
    on_error: OnError = "fail",
    progress: Progress | None = None,
) -> VersionInfo:
    """Import the result of a SQL ``query`` against the database at ``url`` (any SQLAlchemy URL)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    progress = progress or NullProgress()
    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise InputError(
            f"not a usable database URL ({exc}); expected e.g. sqlite:///data.db or "
            "postgresql://user@host/db",
            field="url",
        ) from None
    safe_url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn, progress.task(f"querying {engine.url.database}", total=None) as task:
            result = conn.execution_options(stream_results=True, yield_per=5_000).execute(text(query))

            def records() -> Iterator[Record]:
                for n, row in enumerate(result.mappings(), start=1):
                    yield n, dict(row)
                    if n % 5_000 == 0:
                        task.advance(5_000)

            params = {"url": safe_url, "query": query, "on_error": on_error}
            return _ingest(ctx, records(), f"{safe_url} query", name, mapping, on_error, params, lambda: None)
    except SQLAlchemyError as exc:
        raise InputError(
            f"the query failed: {str(exc.orig or exc).strip().splitlines()[0]}", file=safe_url
        ) from None
    finally:
        engine.dispose()


def _ingest(
    ctx: Context,
    records: Iterator[Record],
    source: str,
    name: str,
    mapping: FieldMap | None,
    on_error: OnError,
    params: dict[str, Any],
    tick: Any,
    append: bool = False,
) -> VersionInfo:
    report = ImportReport(file=source)
    with ctx.artifacts.staging() as scratch, _fewer_collections():
        seen = IdIndex(scratch)
        try:
            rows = _canonical_rows(records, source, mapping or FieldMap(), on_error, report, tick, seen)
            first = next(rows, None)
            if first is None:
                raise InputError(
                    f"no valid rows ({report.skipped} skipped)"
                    if report.skipped
                    else "the file holds no rows",
                    file=source,
                )
            base = merge.latest(ctx, name) if append else None
            if base is not None:
                return merge.append(
                    ctx,
                    base,
                    _counted(batched(itertools.chain([first], rows)), report),
                    source,
                    DATASET_FORMAT[report.format],
                    "append",
                    {**params, "mapping": report.mapping, "format": report.format, "base": base.ref},
                    [base.id],
                    lambda: report.__dict__,
                )
            return commit_version(
                ctx,
                dataset=name,
                operation="import",
                params={**params, "mapping": report.mapping, "format": report.format},
                parents=[],
                report=lambda: report.__dict__,  # read after the last row: counts are final then
                create=True,
                batches=_counted(batched(itertools.chain([first], rows)), report),
                dataset_format=DATASET_FORMAT[report.format],
                keep_if_unchanged=True,
            )
        finally:
            seen.close()


def _ingest_columnar(
    ctx: Context,
    stream: IO[bytes],
    kind: str,
    source: str,
    name: str,
    mapping: FieldMap | None,
    params: dict[str, Any],
    tick: Any,
) -> VersionInfo:
    """The import of a JSONL or Parquet file of valid prompt/response rows, column-wise (``columnar``);
    ``columnar.Unsupported`` as soon as a block holds a row the row path must see."""
    blocks = columnar.jsonl_blocks(stream) if kind == "jsonl" else columnar.parquet_blocks(stream)
    head = next(blocks, None)
    if head is None or not head.num_rows:
        raise columnar.Unsupported("no rows")
    try:
        detected = detect_any(columnar.first_row(head), mapping or FieldMap())
    except InputError:
        raise columnar.Unsupported("format not detected") from None
    fmap = with_optional_fields(detected, mapping or FieldMap())
    if not columnar.supports(fmap):
        raise columnar.Unsupported(fmap.format)
    report = ImportReport(file=source, mapping=describe(detected), format=fmap.format)
    report.row_formats = {report.mapping: 0}
    with ctx.artifacts.staging() as folder:
        # Every id goes into a DuckDB table in the staging folder (spilling to disk beyond its memory
        # limit); one GROUP BY after the last block finds a repeat, before anything is recorded.
        seen = scratch.connect(folder)
        seen.execute(f"SET memory_limit = '{ID_CHECK_MEMORY}'")
        seen.execute("CREATE TABLE ids (id VARCHAR)")

        def tables() -> Iterator[pa.Table]:
            for table in itertools.chain([head], blocks):
                if not table.num_rows:
                    continue
                rows = columnar.to_canonical(table, fmap)
                ids = _column_ids(table, rows, fmap)
                seen.from_arrow(pa.table({"id": ids})).insert_into("ids")
                rows = rows.add_column(0, "id", ids)
                report.rows += rows.num_rows
                report.row_formats[report.mapping] += rows.num_rows
                tick()
                yield rows
            if seen.execute("SELECT 1 FROM ids GROUP BY id HAVING count(*) > 1 LIMIT 1").fetchone():
                raise columnar.Unsupported("a repeated id")

        try:
            return commit_version(
                ctx,
                dataset=name,
                operation="import",
                params={**params, "mapping": report.mapping, "format": report.format},
                parents=[],
                report=lambda: report.__dict__,
                create=True,
                batches=tables(),
                dataset_format=DATASET_FORMAT[report.format],
                keep_if_unchanged=True,
            )
        finally:
            seen.close()


def _column_ids(table: pa.Table, rows: pa.Table, fmap: FieldMap) -> pa.Array:
    """Ids as the row path gives them: the source's non-empty text or integer ``id``, else the content
    hash (a repeat is found after the last block and sends the file to the row path, which names both
    lines)."""
    n = table.num_rows
    given: pa.Array | None = None
    if fmap.id in table.column_names and not pa.types.is_null(table.schema.field(fmap.id).type):
        col = table.column(fmap.id)
        if not (pa.types.is_string(col.type) or pa.types.is_integer(col.type)):
            raise columnar.Unsupported(f"id is {col.type}")
        given = col.cast(pa.string()).combine_chunks()
    explicit = (
        np.zeros(n, dtype=bool)
        if given is None
        else pc.fill_null(pc.greater(pc.utf8_length(given), 0), False).to_numpy(zero_copy_only=False)
    )
    if explicit.all() and given is not None:
        ids = given
    else:
        values = np.array(given.to_pylist() if given is not None else [None] * n, dtype=object)
        hashed = rows.filter(pa.array(~explicit)).to_pylist()
        values[~explicit] = [sha256_json(r)[:16] for r in hashed]
        ids = pa.array(values, pa.string())
    return ids


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the import with far fewer cyclic garbage collections.

    An import creates millions of short-lived dicts and lists that hold no reference cycles (reference
    counting frees them), yet each batch that survives a young collection pushes the collector towards
    full collections that walk every object of the process (all imported modules included); measured,
    that was about a third of the import's time. Objects alive before the import are frozen out of
    collections and the young-generation threshold is raised; both are restored when the last
    concurrent import ends.
    """
    global _relaxed, _saved_threshold
    with _gc_lock:
        if not _relaxed:
            _saved_threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(50_000, *_saved_threshold[1:])
        _relaxed += 1
    try:
        yield
    finally:
        with _gc_lock:
            _relaxed -= 1
            if not _relaxed:
                gc.set_threshold(*_saved_threshold)
                gc.unfreeze()


_gc_lock = threading.Lock()
_relaxed = 0
_saved_threshold = gc.get_threshold()


def _counted(batches: Iterator[list[dict[str, Any]]], report: ImportReport) -> Iterator[list[dict[str, Any]]]:
    for batch in batches:
        report.rows += len(batch)
        yield batch


def _canonical_rows(
    records: Iterator[Record],
    source: str,
    given: FieldMap,
    on_error: str,
    report: ImportReport,
    tick: Any,
    seen: IdIndex,
) -> Iterator[dict[str, Any]]:
    """Canonical rows with unique ids, in source order; records are validated ``CHUNK`` at a time so
    that the id index is asked once per chunk, and errors still surface in line order."""
    fmap: FieldMap | None = None
    mapper: RowMapper | None = None
    for chunk, tail in _chunks(records):
        parsed: list[tuple[int, dict[str, Any] | InputError, str, bool]] = []
        for lineno, raw in chunk:
            try:
                if isinstance(raw, InputError):
                    raise raw
                if mapper is None:
                    mapper = RowMapper(given, raw, lineno, report)
                    fmap = mapper.first
                row = mapper.canonical(raw)
                given_id = raw.get(mapper.first.id)
                explicit = (
                    isinstance(given_id, str | int) and not isinstance(given_id, bool) and given_id != ""
                )
                rid = str(given_id) if explicit else sha256_json(row)[:16]
                parsed.append((lineno, row, rid, explicit))
            except InputError as err:
                parsed.append((lineno, err, "", False))
        earlier = seen.lookup([rid for _, _, rid, _ in parsed if rid])
        added: dict[str, int] = {}
        for lineno, row, rid, explicit in parsed:
            try:
                if isinstance(row, InputError):
                    raise row
                first = earlier.get(rid) or added.get(rid)
                if first is not None:
                    if explicit:
                        raise InputError(
                            f"duplicate id {rid!r} (first on line {first})", field=fmap.id if fmap else "id"
                        )
                    rid = f"{rid}-{lineno}"  # identical content without ids: keep both rows, distinct ids
                added[rid] = lineno
                yield {"id": rid, **row}
            except InputError as err:
                located = InputError(err.reason, file=source, line=lineno, field=err.field)
                if on_error == "fail":
                    raise located from None
                _note(report, located)
        seen.add(added)
        tick()
        if tail is not None:
            raise InputError(tail.reason, file=source, line=tail.line, field=tail.field)


def _chunks(records: Iterator[Record]) -> Iterator[tuple[list[Record], InputError | None]]:
    """``records`` in lists of ``CHUNK``; an error the reader raises (e.g. an unclosed JSON array)
    comes with the records read before it, so those are reported first."""
    it = iter(records)
    while True:
        chunk: list[Record] = []
        try:
            for record in it:
                chunk.append(record)
                if len(chunk) >= CHUNK:
                    break
            else:
                if chunk:
                    yield chunk, None
                return
        except InputError as exc:
            yield chunk, exc
            return
        yield chunk, None


class RowMapper:
    """Maps each row with the mapping detected from the first row or, when a row does not fit it and no
    mapping was given, with its own detected mapping, provided that maps onto the same dataset format
    (chat and Alpaca rows interleaved are both SFT). A row that fits neither is refused with what was
    detected where, so a user sees why line 2 differs from line 1. ``report.row_formats`` counts the
    rows of each mapping."""

    def __init__(self, given: FieldMap, raw: dict[str, Any], line: int, report: ImportReport) -> None:
        self.given, self.line, self.report = given, line, report
        detected = detect_any(raw, given)
        self.first = with_optional_fields(detected, given)
        self.dataset_format = DATASET_FORMAT[self.first.format]
        self.others: dict[str, FieldMap] = {}
        self.explicit = given != FieldMap()
        report.mapping, report.format = describe(detected), self.first.format
        self.first_key = report.mapping
        report.row_formats = {report.mapping: 0}

    def canonical(self, raw: dict[str, Any]) -> dict[str, Any]:
        try:
            row = canonical(raw, self.first)
            self.report.row_formats[self.first_key] += 1
            return row
        except InputError as err:
            if self.explicit:
                raise
            detected = self._other(raw, err)
            other = self.others.setdefault(describe(detected), with_optional_fields(detected, FieldMap()))
        key = describe(detected)
        row = canonical(raw, other)
        if key not in self.report.row_formats:
            self.report.row_formats[key] = 0
            self.report.mapping = "; ".join(self.report.row_formats)
        self.report.row_formats[key] += 1
        return row

    def _other(self, raw: dict[str, Any], err: InputError) -> FieldMap:
        first = f"{describe(self.first)}, detected from line {self.line}"
        try:
            other = detect_any(raw, FieldMap())
        except InputError:
            raise InputError(
                f"{err.reason}; the row fits no known format (keys: {sorted(raw)}); the file's rows are "
                f"{first}",
                field=err.field,
            ) from None
        if describe(other) == describe(self.first):
            raise err
        if DATASET_FORMAT[other.format] != self.dataset_format:
            raise InputError(
                f"{err.reason}; this row is {describe(other)} ({DATASET_FORMAT[other.format]}), but the "
                f"file's rows are {first} ({self.dataset_format}): one file holds one dataset format",
                field=err.field,
            )
        return other


def with_optional_fields(fmap: FieldMap, given: FieldMap) -> FieldMap:
    """``fmap`` reading the optional SFT fields from every row, not only when the first row has them:
    ``answer`` (the reference answer, for chat rows too) and Alpaca's ``input`` after an instruction."""
    if fmap.format not in ("chat", "prompt_response"):
        return fmap
    changes: dict[str, str] = {}
    if not given.answer and not fmap.answer and "answer" not in (fmap.response, fmap.messages, fmap.prompt):
        changes["answer"] = "answer"
    if fmap.format == "prompt_response" and fmap.prompt == "instruction" and not given.context:
        changes["context"] = fmap.context or "input"
    return FieldMap(**{**fmap.__dict__, **changes}) if changes else fmap


class IdIndex:
    """Which ids an import has seen, and on which line: a SQLite table in the import's scratch folder.

    Memory stays fixed however many rows arrive (SQLite's page cache, ``CACHE_MIB``); the table itself
    lives on disk (about 10 bytes per row plus the id's text) and disappears with the scratch folder.
    Ids are compared exactly (the text, not a hash). Asked once per chunk of rows: ``lookup`` then
    ``add``.
    """

    CACHE_MIB = 32

    def __init__(self, folder: Path) -> None:
        self._con = sqlite3.connect(folder / "ids.sqlite", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{self.CACHE_MIB * 1024}"):
            self._con.execute(f"PRAGMA {pragma}")
        self._con.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")

    def lookup(self, ids: list[str]) -> dict[str, int]:
        """``{id: first line}`` for those of ``ids`` that were added before."""
        out: dict[str, int] = {}
        for start in range(0, len(ids), 10_000):  # below SQLite's limit of bound parameters
            part = ids[start : start + 10_000]
            sql = f"SELECT id, line FROM ids WHERE id IN ({','.join('?' * len(part))})"
            out.update(self._con.execute(sql, part).fetchall())
        return out

    def add(self, ids: dict[str, int]) -> None:
        """Record ``{id: line}`` (ids not added before)."""
        self._con.execute("BEGIN")
        self._con.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", ids.items())
        self._con.execute("COMMIT")

    def close(self) -> None:
        self._con.close()


def _note(report: ImportReport, err: InputError) -> None:
    report.skipped += 1
    # Reasons that differ only in numbers (columns, message indexes) are one kind of reason.
    kind = re.sub(r"\d+", "N", f"field '{err.field}': {err.reason}" if err.field else err.reason)[:400]
    if kind in report.skipped_by_reason or len(report.skipped_by_reason) < MAX_REPORTED_ERRORS:
        report.skipped_by_reason[kind] = report.skipped_by_reason.get(kind, 0) + 1
    if len(report.errors) < MAX_REPORTED_ERRORS:
        report.errors.append({"line": err.line, "field": err.field, "reason": err.reason})
