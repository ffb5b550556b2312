"""Immutable, content-addressed dataset versions.

A version is a list of Parquet shards stored under ``datasets/shards/<sha[:2]>/<sha256>.parquet`` (the hash of
the shard's bytes, so identical shards are shared between versions, never copied) plus a database row
with schema, statistics, parents and the operation that made it. References users type:

    NAME            latest version of dataset NAME in the current project
    NAME@3          version 3
    NAME@3:test     version 3, rows of split "test"
    dv_...          a version id (optionally with :SPLIT)
    OTHER/NAME@3    version 3 of project OTHER's dataset NAME, if OTHER shared it with this project
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.core.hashing import sha256_json
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.data.schemas import schema_of
from imts.data.shards import ShardWriter, StatsAccumulator
from imts.store import audit
from imts.store.context import Context
from imts.store.models import Dataset, DatasetShare, DatasetVersion, Project, VersionParent

_REF = re.compile(
    r"^(?:(?P<project>[^/@:]+)/)?(?P<name>[^/@:]+)(?:@(?P<number>\d+))?(?::(?P<split>[\w-]+))?$"
)
BATCH_ROWS = 5_000
PENDING = "pending-shards.json"
RECORD_ATTEMPTS = 20  # tries at a free version number when other processes write the same dataset


class ReadOnlyError(ConflictError):
    """A write to a dataset shared read-only from another project."""


class VersionInfo(BaseModel):
    """A dataset version: what callers need of it, detached from any database session (a read model)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    dataset: str
    number: int
    num_rows: int
    content_hash: str
    shards: list[str]
    operation: str
    params: dict[str, Any]
    stats: dict[str, Any]
    report: dict[str, Any]
    parents: list[str]
    format: str = "sft"
    project_id: str = ""
    # Column name -> Arrow type. Named ``schema`` outside (alias); ``BaseModel.schema`` is taken.
    columns: dict[str, str] = Field(default_factory=dict, alias="schema")
    # An import (or append, merge) whose rows are exactly the dataset's latest version: that version is
    # returned and no new one is made.
    unchanged: bool = False

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"


class DataRef(BaseModel):
    """A version, or one split of it: what a dataset reference resolves to."""

    model_config = ConfigDict(frozen=True)

    version: VersionInfo
    split: str | None = None

    def __init__(self, version: VersionInfo, split: str | None = None) -> None:
        super().__init__(version=version, split=split)

    def __str__(self) -> str:
        return self.version.ref + (f":{self.split}" if self.split else "")


def schema_for(rows: list[dict[str, Any]], dataset_format: str = "sft") -> pa.Schema:
    return schema_of(dataset_format, with_split=bool(rows) and "split" in rows[0])


def batched(rows: Iterable[dict[str, Any]], size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Group a row iterator into lists of ``size`` rows (default ``BATCH_ROWS``: the unit a streamed
    write holds in memory)."""
    it = iter(rows)
    while batch := list(islice(it, size or BATCH_ROWS)):
        yield batch


def commit_version(
    ctx: Context,
    dataset: str,
    rows: list[dict[str, Any]] | None = None,
    operation: str = "",
    params: dict[str, Any] | None = None,
    parents: list[str] | None = None,
    report: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    create: bool = False,
    progress: Progress | None = None,
    *,
    batches: Iterable[list[dict[str, Any]] | pa.Table] | None = None,
    dataset_format: str = "sft",
    keep_if_unchanged: bool = False,
    expect_latest: str | None = None,
) -> VersionInfo:
    """Write rows as a new version of ``dataset``, atomically.

    Args:
        rows: all rows at once (small operations), or
        batches: an iterator of row lists, consumed once and written as it goes (bounded memory).
        report: the operation's report, or a function returning it once ``batches`` is exhausted.
        dataset_format: format of the rows (``schemas.SCHEMAS``); must match an existing dataset's.
        keep_if_unchanged: when the rows are exactly the dataset's latest version, make no version and
            return that one (``unchanged=True``).
        expect_latest: the id of the version the rows were built on (an append): if another process
            made a newer one meanwhile, refuse rather than drop its rows silently.

    Shards are written into a staging folder; inside the version's transaction the shard keys about to
    be created are recorded in the staging folder, the shards are moved into the content-addressed
    store, and the transaction commits. A process killed at any point leaves no version; shards it
    moved but never committed are removed by the next ``Context`` open (``sweep_orphans``).
    """
    progress = progress or NullProgress()
    parents = parents or []
    source = batches if batches is not None else ([rows] if rows else [])
    with ctx.artifacts.staging() as stage:
        writer: ShardWriter | None = None
        stats = StatsAccumulator(dataset_format)
        with progress.task(f"writing {dataset} shards", total=len(rows) if rows else None) as task:
            for batch in source:
                if isinstance(batch, pa.Table):  # column-wise producers (``columnar``) pass Arrow tables
                    if not batch.num_rows:
                        continue
                    if writer is None:
                        writer = ShardWriter(stage, schema_of(dataset_format, "split" in batch.column_names))
                    writer.write_table(batch)
                    stats.add_table(batch)
                    task.advance(batch.num_rows)
                    continue
                if not batch:
                    continue
                if writer is None:
                    writer = ShardWriter(stage, schema_for(batch, dataset_format))
                writer.write(batch)
                stats.add(batch)
                task.advance(len(batch))
        if writer is None:
            raise InputError(f"refusing to create an empty version of '{dataset}'")
        shard_files = writer.close()
        final_report = report() if callable(report) else (report or {})
        return _record(
            ctx,
            dataset,
            shard_files,
            writer.schema,
            stats.result(),
            operation,
            params or {},
            parents,
            final_report,
            create,
            dataset_format,
            stage,
            keep_if_unchanged,
            expect_latest,
        )


def _record(
    ctx: Context,
    dataset: str,
    shard_files: list[tuple[str, Path | None]],
    schema: pa.Schema | dict[str, str],
    stats: dict[str, Any],
    operation: str,
    params: dict[str, Any],
    parents: list[str],
    report: dict[str, Any],
    create: bool,
    dataset_format: str,
    stage: Path,
    keep_if_unchanged: bool = False,
    expect_latest: str | None = None,
) -> VersionInfo:
    """Insert the version row and move its shards into place, in one transaction (see above).

    Two processes writing a version of one dataset at once may pick the same number (or both create
    the dataset): the loser's insert fails on the unique constraint before any shard was moved, and it
    tries again with the next number (``RECORD_ATTEMPTS`` times).
    """
    for attempt in range(RECORD_ATTEMPTS):
        try:
            return _record_once(
                ctx,
                dataset,
                shard_files,
                schema,
                stats,
                operation,
                params,
                parents,
                report,
                create,
                dataset_format,
                stage,
                keep_if_unchanged,
                expect_latest,
            )
        except IntegrityError:
            if attempt == RECORD_ATTEMPTS - 1:
                raise ConflictError(
                    f"could not record a new version of '{dataset}': {RECORD_ATTEMPTS} concurrent writers "
                    "took every number tried; run the command again"
                ) from None
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # let the winner commit
    raise AssertionError("unreachable")


def _record_once(
    ctx: Context,
    dataset: str,
    shard_files: list[tuple[str, Path | None]],
    schema: pa.Schema | dict[str, str],
    stats: dict[str, Any],
    operation: str,
    params: dict[str, Any],
    parents: list[str],
    report: dict[str, Any],
    create: bool,
    dataset_format: str,
    stage: Path,
    keep_if_unchanged: bool,
    expect_latest: str | None,
) -> VersionInfo:
    digests = [d for d, _ in shard_files]
    content_hash = sha256_json(digests)
    with ctx.session() as s:
        ds = s.scalar(select(Dataset).where(Dataset.project_id == ctx.project_id, Dataset.name == dataset))
        if ds is None:
            _refuse_shared_write(s, ctx, dataset, parents)
            if not create:
                raise NotFoundError(f"no dataset named '{dataset}'")
            ds = Dataset(id=new_id("ds"), project_id=ctx.project_id, name=dataset, format=dataset_format)
            s.add(ds)
            s.flush()
        elif ds.format != dataset_format:
            raise ConflictError(
                f"dataset '{dataset}' holds {ds.format} rows; these are {dataset_format}: "
                "import them under another name"
            )
        latest = s.scalar(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == ds.id)
            .order_by(DatasetVersion.number.desc())
            .limit(1)
        )
        if expect_latest is not None and (latest is None or latest.id != expect_latest):
            raise ConflictError(
                f"{dataset}@{latest.number if latest else '?'} was made by another command while this "
                f"{operation} ran on the version before it: run the {operation} again"
            )
        if keep_if_unchanged and latest is not None and latest.content_hash == content_hash:
            # Same rows, same order, same bytes: a second identical version would only be noise.
            kept = list(
                s.scalars(select(VersionParent.parent_id).where(VersionParent.version_id == latest.id))
            )
            info = _info(latest, ds.name, kept, ds.format, ds.project_id)
            return info.model_copy(update={"unchanged": True})
        version = DatasetVersion(
            id=new_id("dv"),
            dataset_id=ds.id,
            number=(latest.number if latest is not None else 0) + 1,
            content_hash=content_hash,
            num_rows=int(stats["rows"]),
            shards=digests,
            schema=schema if isinstance(schema, dict) else {f.name: str(f.type) for f in schema},
            stats=stats,
            operation=operation,
            params=params,
            report=report,
        )
        s.add(version)
        s.flush()
        for parent in parents:
            s.add(VersionParent(version_id=version.id, parent_id=parent))
        s.flush()
        # In the version's own transaction: the entry exists exactly when the version does.
        summary = {"dataset": ds.name, "number": version.number, "rows": version.num_rows,
                   "content_hash": version.content_hash, "parents": parents}  # fmt: skip
        audit.record(
            ctx, s, f"dataset.{operation or 'commit'}", ("dataset_version", version.id), None, summary
        )
        # Record which shard files this process is about to create, durably, before creating them: if
        # the process dies before the commit below, the next open deletes exactly those (if no
        # committed version uses them) instead of leaving orphans.
        new_keys = [
            _shard_key(d)
            for d, tmp in shard_files
            if tmp is not None and not ctx.artifacts.exists(_shard_key(d))
        ]
        with (stage / PENDING).open("w") as f:
            json.dump(new_keys, f)
            f.flush()
            os.fsync(f.fileno())
        for digest, tmp in shard_files:
            if tmp is not None:
                ctx.artifacts.commit(tmp, _shard_key(digest), content_addressed=True)
        info = _info(version, ds.name, parents, ds.format, ds.project_id)
    return info


def _refuse_shared_write(s: Session, ctx: Context, dataset: str, parents: list[str]) -> None:
    for parent in parents:
        v = s.get(DatasetVersion, parent)
        if v is not None and v.dataset.project_id != ctx.project_id and v.dataset.name == dataset:
            raise ReadOnlyError(
                f"dataset '{dataset}' is shared read-only from another project: write the result into a "
                "dataset of your own (--into NAME)"
            )


def record_existing_shards(
    ctx: Context,
    dataset: str,
    source: VersionInfo,
    operation: str,
    params: dict[str, Any],
    parents: list[str],
    report: dict[str, Any] | None = None,
) -> VersionInfo:
    """A new version made of ``source``'s shards, shared not copied (rollback)."""
    with ctx.artifacts.staging() as stage:
        return _record(
            ctx,
            dataset,
            [(d, None) for d in source.shards],
            source.columns,
            source.stats,
            operation,
            params,
            parents,
            report or {},
            False,
            source.format,
            stage,
        )


def shard_path(ctx: Context, digest: str) -> Path:
    return ctx.artifacts.path(_shard_key(digest))


def _shard_key(digest: str) -> str:
    return f"datasets/shards/{digest[:2]}/{digest}.parquet"


def compute_stats(rows: list[dict[str, Any]], dataset_format: str = "sft") -> dict[str, Any]:
    """Per-field statistics of a list of rows (see ``shards.StatsAccumulator``)."""
    acc = StatsAccumulator(dataset_format)
    acc.add(rows)
    return acc.result()


def _info(v: DatasetVersion, dataset: str, parents: list[str], fmt: str, project_id: str) -> VersionInfo:
    return VersionInfo(
        id=v.id,
        dataset=dataset,
        number=v.number,
        num_rows=v.num_rows,
        content_hash=v.content_hash,
        shards=list(v.shards),
        operation=v.operation,
        params=dict(v.params),
        stats=dict(v.stats),
        report=dict(v.report),
        parents=parents,
        format=fmt,
        project_id=project_id,
        columns=dict(v.schema),
    )


def sweep_orphans(ctx: Context) -> int:
    """Delete shards that a killed process moved into the store but never committed. Returns how many."""
    pending = ctx.artifacts.dead_pending(PENDING)
    if not pending:
        return 0
    with ctx.session() as s:
        used = {d for shards in s.scalars(select(DatasetVersion.shards)) for d in shards}
    removed = 0
    for folder, keys in pending:
        for key in keys:
            if key.rsplit("/", 1)[-1].removesuffix(".parquet") not in used and ctx.artifacts.exists(key):
                ctx.artifacts.delete(key)
                removed += 1
        ctx.artifacts.delete_staging(folder)
    return removed


def resolve(ctx: Context, ref: str) -> DataRef:
    """Parse and look up a dataset reference (see the module docstring).

    Versions of this project's datasets resolve; so do versions of other projects' datasets that were
    shared with this project (``PROJECT/NAME[@N]`` or a version id); nothing else does.
    """
    text, _, split = ref.partition(":") if ref.startswith("dv_") else (ref, "", "")
    with ctx.session() as s:
        if text.startswith("dv_"):
            v = s.get(DatasetVersion, text)
            if v is None or not _visible(s, ctx, v):
                raise NotFoundError(f"no dataset version '{text}'")
            name = v.dataset.name
        else:
            m = _REF.match(ref)
            if not m:
                raise InputError(f"bad dataset reference '{ref}': expected [PROJECT/]NAME[@VERSION][:SPLIT]")
            name, split = m["name"], m["split"] or ""
            v = _lookup(s, ctx, m["project"], name, m["number"])
        parents = list(s.scalars(select(VersionParent.parent_id).where(VersionParent.version_id == v.id)))
        info = _info(v, name, parents, v.dataset.format, v.dataset.project_id)
    if split and split not in info.stats.get("split", {}):
        have = ", ".join(info.stats.get("split", {})) or "none: split it first with `imts data split`"
        raise NotFoundError(f"{info.ref} has no split '{split}' (splits: {have})")
    return DataRef(info, split or None)


def _lookup(s: Session, ctx: Context, project: str | None, name: str, number: str | None) -> DatasetVersion:
    project_id = ctx.project_id
    if project:
        project_id = (
            s.scalar(select(Project.id).where(Project.tenant_id == ctx.tenant_id, Project.name == project))
            or ""
        )
    ds = s.scalar(select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name))
    if ds is None:
        raise NotFoundError(f"no dataset named '{name}'" + (f" in project '{project}'" if project else ""))
    q = select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)
    if project_id != ctx.project_id:  # another project's dataset: only the versions shared with us
        q = q.join(DatasetShare, DatasetShare.version_id == DatasetVersion.id).where(
            DatasetShare.project_id == ctx.project_id
        )
    q = q.where(DatasetVersion.number == int(number)) if number else q
    v = s.scalar(q.order_by(DatasetVersion.number.desc()).limit(1))
    if v is None:
        what = f"version {number}" if number else "versions"
        raise NotFoundError(
            f"dataset '{name}' has no {what}" + (" shared with this project" if project else "")
        )
    return v


def _visible(s: Session, ctx: Context, v: DatasetVersion) -> bool:
    if v.dataset.project_id == ctx.project_id:
        return True
    share = s.get(DatasetShare, (v.id, ctx.project_id))
    return share is not None


def share_version(ctx: Context, ref: str, project: str) -> VersionInfo:
    """Share one of this project's versions read-only with ``project`` (created if new)."""
    version = resolve(ctx, ref).version
    if version.project_id != ctx.project_id:
        raise ReadOnlyError(f"{version.ref} belongs to another project: only its owner can share it")
    with ctx.session() as s:
        target = s.scalar(select(Project).where(Project.tenant_id == ctx.tenant_id, Project.name == project))
        if target is None:
            target = Project(id=new_id("prj"), tenant_id=ctx.tenant_id, name=project)
            s.add(target)
            s.flush()
        if target.id == ctx.project_id:
            raise InputError("a project cannot share with itself")
        if s.get(DatasetShare, (version.id, target.id)) is None:
            s.add(DatasetShare(version_id=version.id, project_id=target.id))
            s.flush()
            audit.record(ctx, s, "dataset.share", ("dataset_version", version.id), None, {"project": project})
    return version


def iter_tables(
    ctx: Context,
    ref: DataRef | VersionInfo,
    batch_rows: int | None = None,
    columns: list[str] | None = None,
) -> Iterator[pa.Table]:
    """A version's rows (or one split's) as Arrow tables of at most ``batch_rows`` rows, streamed.

    Args:
        columns: read only these columns (all when None).
    """
    version, split = (ref.version, ref.split) if isinstance(ref, DataRef) else (ref, None)
    read = None if columns is None else list(dict.fromkeys([*columns, *(["split"] if split else [])]))
    for digest in version.shards:
        shard = pq.ParquetFile(shard_path(ctx, digest))
        for batch in shard.iter_batches(batch_size=batch_rows or BATCH_ROWS, columns=read):
            table = pa.Table.from_batches([batch])
            if split:
                table = table.filter(pc.equal(table["split"], split))
                if columns is not None and "split" not in columns:
                    table = table.drop_columns(["split"])
            if table.num_rows:
                yield table


def load_rows(ctx: Context, ref: DataRef | VersionInfo) -> list[dict[str, Any]]:
    """All rows of a version (or of one split of it), in stored order."""
    return [r for t in iter_tables(ctx, ref) for r in t.to_pylist()]


def list_versions(ctx: Context, dataset: str | None = None) -> list[VersionInfo]:
    with ctx.session() as s:
        q = select(DatasetVersion, Dataset).join(Dataset).where(Dataset.project_id == ctx.project_id)
        if dataset:
            q = q.where(Dataset.name == dataset)
        found = s.execute(q.order_by(Dataset.name, DatasetVersion.number)).all()
        parents: dict[str, list[str]] = {}
        edges = (
            select(VersionParent)
            .join(DatasetVersion, DatasetVersion.id == VersionParent.version_id)
            .join(Dataset)
            .where(Dataset.project_id == ctx.project_id, *([Dataset.name == dataset] if dataset else []))
        )
        for edge in s.scalars(edges):
            parents.setdefault(edge.version_id, []).append(edge.parent_id)
        return [_info(v, ds.name, parents.get(v.id, []), ds.format, ds.project_id) for v, ds in found]
