"""Import a user's data as a new dataset version: files (local or fsspec URLs such as ``s3://``) and SQL.

Sources are streamed: records are read, validated and mapped one at a time and written in batches of
``versions.BATCH_ROWS`` rows (see ``shards`` for the memory bound). Every bad record is reported with
file, line and reason. With ``on_error="fail"`` (the default) the first bad record aborts the import;
with ``"skip"`` bad records are left out and listed in the version's report. Either way nothing is
recorded unless the whole import succeeds (see ``versions.commit_version``).

Ids: a source ``id`` field is kept and must be unique (checked through ``IdIndex``, 16 bytes per row,
the one per-row cost of an import beyond the 8 bytes of statistics); rows without one get a content
hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from imts.core.errors import InputError
from imts.core.hashing import sha256_json
from imts.core.progress import NullProgress, Progress
from imts.data.formats import FieldMap
from imts.data.readers import Record, kind_of, open_source, read_records
from imts.data.schemas import DATASET_FORMAT, canonical, describe, detect_any
from imts.data.versions import VersionInfo, batched, commit_version
from imts.store.workspace import Workspace

MAX_REPORTED_ERRORS = 100
OnError = Literal["fail", "skip"]


@dataclass
class ImportReport:
    file: str
    mapping: str = ""
    format: str = ""
    rows: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def import_file(
    ws: Workspace,
    path: Path | str,
    name: str | None = None,
    mapping: FieldMap | None = None,
    on_error: OnError = "fail",
    progress: Progress | None = None,
    *,
    file_type: str | None = None,
    text_unit: Literal["line", "paragraph"] = "line",
    storage_options: dict[str, Any] | None = None,
) -> VersionInfo:
    """Import a JSONL/JSON/CSV/Parquet/text file (a path or an fsspec URL) as a new version of ``name``."""
    progress = progress or NullProgress()
    source = str(path)
    local = "://" not in source
    if local and not Path(source).is_file():
        raise InputError("no such file", file=source)
    kind = kind_of(source, file_type)
    f, size = open_source(source, storage_options)
    if size == 0:
        f.close()
        raise InputError("the file is empty: no rows to import", file=source)
    if kind == "text" and not (mapping and mapping.format):
        mapping = FieldMap(**{**(mapping or FieldMap()).__dict__, "format": "text"})
    stem = source.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    params = {
        "file": str(Path(source).resolve()) if local else source,
        "type": kind,
        "on_error": on_error,
        **({"text_unit": text_unit} if kind == "text" else {}),
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
        return _ingest(
            ws, read_records(f, kind, text_unit), source, name or stem, mapping, on_error, params, advance
        )


def import_query(
    ws: Workspace,
    url: str,
    query: str,
    name: str,
    mapping: FieldMap | None = None,
    on_error: OnError = "fail",
    progress: Progress | None = None,
) -> VersionInfo:
    """Import the result of a SQL ``query`` against the database at ``url`` (any SQLAlchemy URL)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    progress = progress or NullProgress()
    engine = create_engine(url)
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
            return _ingest(ws, records(), f"{safe_url} query", name, mapping, on_error, params, lambda: None)
    except SQLAlchemyError as exc:
        raise InputError(
            f"the query failed: {str(exc.orig or exc).strip().splitlines()[0]}", file=safe_url
        ) from None
    finally:
        engine.dispose()


def _ingest(
    ws: Workspace,
    records: Iterator[Record],
    source: str,
    name: str,
    mapping: FieldMap | None,
    on_error: OnError,
    params: dict[str, Any],
    tick: Any,
) -> VersionInfo:
    report = ImportReport(file=source)
    rows = _canonical_rows(records, source, mapping or FieldMap(), on_error, report, tick)
    first = next(rows, None)
    if first is None:
        raise InputError(
            f"no valid rows ({report.skipped} skipped)" if report.skipped else "the file holds no rows",
            file=source,
        )
    fmap_format = report.format

    def all_rows() -> Iterator[dict[str, Any]]:
        yield first
        yield from rows

    def final_report() -> dict[str, Any]:
        return report.__dict__

    return commit_version(
        ws,
        dataset=name,
        operation="import",
        params={**params, "mapping": report.mapping, "format": fmap_format},
        parents=[],
        report=final_report,
        create=True,
        batches=_counted(batched(all_rows()), report),
        dataset_format=DATASET_FORMAT[fmap_format],
    )


def _counted(batches: Iterator[list[dict[str, Any]]], report: ImportReport) -> Iterator[list[dict[str, Any]]]:
    for batch in batches:
        report.rows += len(batch)
        yield batch


def _canonical_rows(
    records: Iterator[Record], source: str, given: FieldMap, on_error: str, report: ImportReport, tick: Any
) -> Iterator[dict[str, Any]]:
    fmap: FieldMap | None = None
    seen = IdIndex()
    for n, (lineno, raw) in enumerate(records, start=1):
        try:
            if isinstance(raw, InputError):
                raise raw
            if fmap is None:
                fmap = detect_any(raw, given)
                report.mapping, report.format = describe(fmap), fmap.format
            row = canonical(raw, fmap)
            given_id = raw.get(fmap.id)
            explicit = isinstance(given_id, str | int) and not isinstance(given_id, bool) and given_id != ""
            rid = str(given_id) if explicit else sha256_json(row)[:16]
            first = seen.add(hash(rid), lineno)
            if first is not None:
                if explicit:
                    raise InputError(f"duplicate id {rid!r} (first on line {first})", field=fmap.id)
                rid = f"{rid}-{lineno}"  # identical content without ids: keep both rows, distinct ids
                seen.add(hash(rid), lineno)
            yield {"id": rid, **row}
        except InputError as err:
            located = InputError(err.reason, file=source, line=lineno, field=err.field)
            if on_error == "fail":
                raise located from None
            _note(report, located)
        if n % 2_000 == 0:
            tick()
    tick()


class IdIndex:
    """Which ids an import has seen, in 16 bytes per row: 64-bit hashes of the ids with their lines.

    New entries go into a small dict; every ``RUN`` entries it is frozen into a sorted numpy run, and
    runs of similar size are merged (as in an LSM tree), so a lookup is a dict probe plus a binary
    search in a handful of runs. Two different ids with the same 64-bit hash would be reported as a
    duplicate; for 10 million ids the chance of that is below one in 100,000.
    """

    RUN = 1 << 16

    def __init__(self) -> None:
        self._recent: dict[int, int] = {}
        self._keys: list[np.ndarray] = []
        self._lines: list[np.ndarray] = []

    def add(self, key: int, line: int) -> int | None:
        """Record ``key`` at ``line``; if it was already recorded, return its first line instead."""
        if key in self._recent:
            return self._recent[key]
        for keys, lines in zip(self._keys, self._lines, strict=True):
            i = int(np.searchsorted(keys, key))
            if i < len(keys) and keys[i] == key:
                return int(lines[i])
        self._recent[key] = line
        if len(self._recent) >= self.RUN:
            self._freeze()
        return None

    def _freeze(self) -> None:
        keys = np.fromiter(self._recent.keys(), dtype=np.int64, count=len(self._recent))
        lines = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        self._recent = {}
        self._keys.append(keys)
        self._lines.append(lines)
        while len(self._keys) >= 2 and len(self._keys[-2]) <= 2 * len(self._keys[-1]):
            k2, l2 = self._keys.pop(), self._lines.pop()
            self._keys[-1] = np.concatenate([self._keys[-1], k2])
            self._lines[-1] = np.concatenate([self._lines[-1], l2])
        order = np.argsort(self._keys[-1], kind="stable")
        self._keys[-1], self._lines[-1] = self._keys[-1][order], self._lines[-1][order]


def _note(report: ImportReport, err: InputError) -> None:
    report.skipped += 1
    if len(report.errors) < MAX_REPORTED_ERRORS:
        report.errors.append({"line": err.line, "field": err.field, "reason": err.reason})
