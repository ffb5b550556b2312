"""Append and merge: a new version of a dataset made of its latest version's rows followed by more rows.

The rows come from a file (``imts data import FILE --name NAME --append``: the file is read, validated
and mapped exactly as an import) or from another dataset version (``imts data merge NAME OTHER@N``).
The new version's parents are the latest version and, for a merge, the other version; an appended
file is named in the version's parameters. Both stream in batches, so memory does not grow with the
number of rows: which ids the latest version holds, with a hash of each row's content, is kept in a
SQLite table in the operation's staging folder (``RowIndex``), on disk.

Rows are matched by id. A row whose id and content are already in the latest version is left out and
counted (``already_present``): appending the same file twice adds nothing the second time, and when
nothing at all is new no version is made (``unchanged``). A row whose id is there with other content
is refused, naming the id: which of the two is right is the user's call (``imts data diff`` shows
them). Splits: the result keeps the ``split`` column only when both sides have one; otherwise the new
rows have no split to take, so the column is dropped (``splits_dropped``) and the result needs a new
``imts data split`` before training.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from imts.core.errors import ConflictError, InputError
from imts.core.hashing import sha256_json
from imts.core.progress import NullProgress, Progress
from imts.data.schemas import schema_of
from imts.data.versions import VersionInfo, commit_version, iter_tables, resolve
from imts.store.context import Context
from imts.store.models import Dataset

Batches = Iterable[list[dict[str, Any]]]


def latest(ctx: Context, dataset: str) -> VersionInfo | None:
    """The latest version of this project's ``dataset``, or None when there is no such dataset yet."""
    with ctx.session() as s:
        found = s.scalar(
            select(Dataset.id).where(Dataset.project_id == ctx.project_id, Dataset.name == dataset)
        )
    return None if found is None else resolve(ctx, dataset).version


def append(
    ctx: Context,
    base: VersionInfo,
    rows: Batches,
    source: str,
    dataset_format: str,
    operation: str,
    params: dict[str, Any],
    parents: list[str],
    report: Callable[[], dict[str, Any]] | None = None,
    *,
    keep_split: bool = False,
    progress: Progress | None = None,
) -> VersionInfo:
    """A new version of ``base``'s dataset: ``base``'s rows, then those of ``rows`` not already there.

    Args:
        rows: the rows to add, in batches (consumed once).
        source: what the rows come from (a file, ``NAME@N``), named in messages and the report.
        report: more of the operation's report (e.g. the import's), read once ``rows`` is exhausted.
        keep_split: ``rows`` carry a ``split`` column, as ``base`` does: keep both sides' splits.

    Raises:
        ConflictError: another format than ``base``'s, or a row id already in ``base`` with other content.
    """
    if dataset_format != base.format:
        raise ConflictError(
            f"{base.ref} holds {base.format} rows and {source} holds {dataset_format} rows: "
            "only rows of one format can be put together"
        )
    keep_split = keep_split and "split" in base.columns
    counts = {"base_rows": 0, "added": 0, "already_present": 0}
    with ctx.artifacts.staging() as scratch:
        index = RowIndex(scratch)
        try:
            batches = _combined(ctx, base, rows, source, keep_split, index, counts)
            return commit_version(
                ctx,
                base.dataset,
                operation=operation,
                params=params,
                parents=parents,
                report=lambda: {
                    **(report() if report else {}),
                    "base": base.ref,
                    "source": source,
                    **counts,
                    "splits_dropped": "split" in base.columns and not keep_split,
                },
                progress=progress,
                batches=batches,
                dataset_format=base.format,
                keep_if_unchanged=True,
                expect_latest=base.id,
            )
        finally:
            index.close()


def merge(ctx: Context, dataset: str, other: str, progress: Progress | None = None) -> VersionInfo:
    """A new version of this project's ``dataset``: its latest version's rows, then ``other``'s (a
    version or split, of any dataset this project can read) that are not already there."""
    base = resolve(ctx, dataset).version
    if base.project_id != ctx.project_id:
        raise ConflictError(
            f"{base.ref} is shared read-only from another project: merge into a dataset of your own"
        )
    ref = resolve(ctx, other)
    if ref.version.id == base.id and ref.split is None:
        raise InputError(f"{other} is {base.ref} itself: nothing to merge")
    keep = ref.split is None and "split" in ref.version.columns

    def rows() -> Iterator[list[dict[str, Any]]]:
        for table in iter_tables(ctx, ref):
            yield table.to_pylist()

    return append(
        ctx,
        base,
        rows(),
        str(ref),
        ref.version.format,
        "merge",
        {"base": base.ref, "other": str(ref)},
        [base.id, ref.version.id],
        keep_split=keep,
        progress=progress or NullProgress(),
    )


def _combined(
    ctx: Context,
    base: VersionInfo,
    rows: Batches,
    source: str,
    keep_split: bool,
    index: RowIndex,
    counts: dict[str, int],
) -> Iterator[list[dict[str, Any]]]:
    for table in iter_tables(ctx, base):
        if not keep_split and "split" in table.column_names:
            table = table.drop_columns(["split"])
        batch = table.to_pylist()
        index.add({r["id"]: _content(r) for r in batch})
        counts["base_rows"] += len(batch)
        yield batch
    # New rows go through the stored schema first, so that they compare with stored rows field by field
    # (a missing optional field and a null are the same row).
    schema = schema_of(base.format, with_split=keep_split)
    for raw in rows:
        if not raw:
            continue
        batch = pa.Table.from_pylist(
            [r if keep_split else {k: v for k, v in r.items() if k != "split"} for r in raw], schema
        ).to_pylist()
        known = index.lookup([r["id"] for r in batch])
        fresh = []
        for r in batch:
            stored = known.get(r["id"])
            if stored is None:
                fresh.append(r)
            elif stored == _content(r):
                counts["already_present"] += 1
            else:
                raise ConflictError(
                    f"row id {r['id']!r} of {source} is in {base.ref} already, with other content: "
                    "give the new row another id, or change the row in a new version first "
                    f"(`imts data diff` shows both)"
                )
        index.add({r["id"]: _content(r) for r in fresh})
        counts["added"] += len(fresh)
        if fresh:
            yield fresh


def _content(row: dict[str, Any]) -> str:
    """A row's content, whatever split it is in: two rows are the same when this is."""
    return sha256_json({k: v for k, v in row.items() if k != "split"})


class RowIndex:
    """Row ids with a hash of their content: a SQLite table in the operation's scratch folder, on disk
    (its page cache capped at ``CACHE_MIB``), so memory stays fixed however many rows there are."""

    CACHE_MIB = 32

    def __init__(self, folder: Path) -> None:
        self._con = sqlite3.connect(folder / "rows.sqlite", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{self.CACHE_MIB * 1024}"):
            self._con.execute(f"PRAGMA {pragma}")
        self._con.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, h TEXT NOT NULL) WITHOUT ROWID")

    def lookup(self, ids: list[str]) -> dict[str, str]:
        """``{id: content hash}`` for those of ``ids`` that were added before."""
        out: dict[str, str] = {}
        for start in range(0, len(ids), 10_000):  # below SQLite's limit of bound parameters
            part = ids[start : start + 10_000]
            sql = f"SELECT id, h FROM rows WHERE id IN ({','.join('?' * len(part))})"
            out.update(self._con.execute(sql, part).fetchall())
        return out

    def add(self, rows: dict[str, str]) -> None:
        self._con.execute("BEGIN")
        self._con.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?)", rows.items())
        self._con.execute("COMMIT")

    def close(self) -> None:
        self._con.close()
