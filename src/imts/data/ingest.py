"""Import a user's file as a new dataset version.

The file is streamed line by line; every bad line is reported with file, line and reason. With
``on_error="fail"`` (the default) the first bad line aborts the import; with ``"skip"`` bad lines are
left out and listed in the version's report. Either way nothing is recorded unless the whole import
succeeds (see ``versions.commit_version``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imts.core.errors import InputError
from imts.core.hashing import sha256_json
from imts.core.progress import NullProgress, Progress
from imts.data.formats import FieldMap, detect, to_canonical
from imts.data.versions import VersionInfo, commit_version
from imts.store.workspace import Workspace

MAX_REPORTED_ERRORS = 100


@dataclass
class ImportReport:
    file: str
    mapping: str = ""
    rows: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def import_file(
    ws: Workspace,
    path: Path,
    name: str | None = None,
    mapping: FieldMap | None = None,
    on_error: Literal["fail", "skip"] = "fail",
    progress: Progress | None = None,
) -> VersionInfo:
    """Import a JSONL file (prompt/response or chat rows) as a new version of dataset ``name``."""
    progress = progress or NullProgress()
    if not path.is_file():
        raise InputError("no such file", file=str(path))
    if path.stat().st_size == 0:
        raise InputError("the file is empty: no rows to import", file=str(path))
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise InputError(
            f"unsupported file type '{path.suffix}': expected JSON Lines (.jsonl)", file=str(path)
        )
    report = ImportReport(file=str(path))
    rows = list(_canonical_rows(path, mapping or FieldMap(), on_error, report, progress))
    if not rows:
        raise InputError(
            f"no valid rows ({report.skipped} skipped)" if report.skipped else "the file holds no rows",
            file=str(path),
        )
    report.rows = len(rows)
    return commit_version(
        ws,
        dataset=name or path.stem,
        rows=rows,
        operation="import",
        params={"file": str(path.resolve()), "mapping": report.mapping, "on_error": on_error},
        parents=[],
        report=report.__dict__,
        create=True,
        progress=progress,
    )


def _canonical_rows(
    path: Path, given: FieldMap, on_error: str, report: ImportReport, progress: Progress
) -> Iterator[dict[str, Any]]:
    fmap: FieldMap | None = None
    seen: dict[str, int] = {}
    size = path.stat().st_size
    task_done = [0]  # bytes already reported to the progress bar
    with progress.task(f"reading {path.name}", total=size) as task:
        for lineno, raw, offset in _lines_with_errors(path, on_error, report):
            try:
                if fmap is None:
                    if not isinstance(raw, dict):
                        raise InputError(f"expected a JSON object, got {type(raw).__name__}")
                    fmap = detect(raw, given)
                    report.mapping = fmap.describe()
                row = to_canonical(raw, fmap)
                rid = raw.get(fmap.id) if isinstance(raw.get(fmap.id), (str, int)) else None
                rid = str(rid) if rid is not None else sha256_json(row)[:16]
                if rid in seen:
                    if isinstance(raw.get(fmap.id), (str, int)):
                        raise InputError(f"duplicate id {rid!r} (first on line {seen[rid]})", field=fmap.id)
                    rid = f"{rid}-{lineno}"  # identical content without ids: keep both rows, distinct ids
                seen[rid] = lineno
                yield {"id": rid, **row}
            except InputError as err:
                located = InputError(err.reason, file=str(path), line=lineno, field=err.field)
                if on_error == "fail":
                    raise located from None
                _note(report, located)
            if lineno % 1000 == 0:
                task.advance(offset - task_done[0], rows=len(seen))
                task_done[0] = offset
        task.advance(size - task_done[0], rows=len(seen))


def _lines_with_errors(path: Path, on_error: str, report: ImportReport) -> Iterator[tuple[int, Any, int]]:
    """(line number, parsed JSON, byte offset after the line); malformed lines raise or are noted."""
    offset = 0
    with path.open("rb") as f:
        for lineno, raw_line in enumerate(f, start=1):
            offset += len(raw_line)
            if not raw_line.strip():
                continue
            try:
                yield lineno, json.loads(raw_line.decode("utf-8")), offset
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                reason = (
                    f"malformed JSON: {exc.msg} (column {exc.colno})"
                    if isinstance(exc, json.JSONDecodeError)
                    else f"not UTF-8 text: {exc.reason}"
                )
                err = InputError(reason, file=str(path), line=lineno)
                if on_error == "fail":
                    raise err from None
                _note(report, err)


def _note(report: ImportReport, err: InputError) -> None:
    report.skipped += 1
    if len(report.errors) < MAX_REPORTED_ERRORS:
        report.errors.append({"line": err.line, "field": err.field, "reason": err.reason})
