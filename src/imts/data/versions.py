"""Immutable, content-addressed dataset versions.

A version is a list of Parquet shards stored under ``datasets/shards/<sha256>.parquet`` (the hash of
the shard's bytes, so identical shards are shared between versions, never copied) plus a database row
with schema, statistics, parents and the operation that made it. References users type:

    NAME            latest version of dataset NAME in the current project
    NAME@3          version 3
    NAME@3:test     version 3, rows of split "test"
    dv_...          a version id (optionally with :SPLIT)
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select

from imts.core.errors import InputError, NotFoundError
from imts.core.hashing import sha256_file, sha256_json
from imts.core.ids import new_id
from imts.core.progress import NullProgress, Progress
from imts.data.formats import SCHEMA
from imts.store.models import Dataset, DatasetVersion, VersionParent
from imts.store.workspace import Workspace

SHARD_ROWS = 100_000
_REF = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<number>\d+))?(?::(?P<split>[\w-]+))?$")


@dataclass(frozen=True)
class VersionInfo:
    """What callers need of a version, detached from any database session."""

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

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"


@dataclass(frozen=True)
class DataRef:
    version: VersionInfo
    split: str | None

    def __str__(self) -> str:
        return self.version.ref + (f":{self.split}" if self.split else "")


def schema_for(rows: list[dict[str, Any]]) -> pa.Schema:
    return SCHEMA.append(pa.field("split", pa.string())) if rows and "split" in rows[0] else SCHEMA


def commit_version(
    ws: Workspace,
    dataset: str,
    rows: list[dict[str, Any]],
    operation: str,
    params: dict[str, Any],
    parents: list[str],
    report: dict[str, Any] | None = None,
    create: bool = False,
    progress: Progress | None = None,
) -> VersionInfo:
    """Write ``rows`` as a new version of ``dataset``, atomically.

    Shards are written into a staging folder, the version row is inserted in one transaction, and the
    shards are moved into the content-addressed store only then; a failure at any point leaves no
    version, and the staging folder is removed (or swept later if the process was killed).
    """
    progress = progress or NullProgress()
    if not rows:
        raise InputError(f"refusing to create an empty version of '{dataset}'")
    schema = schema_for(rows)
    with ws.artifacts.staging() as stage:
        shard_files: list[tuple[str, Path]] = []
        with progress.task(f"writing {dataset} shards", total=len(rows)) as task:
            for start in range(0, len(rows), SHARD_ROWS):
                chunk = rows[start : start + SHARD_ROWS]
                tmp = stage / f"shard-{start}.parquet"
                pq.write_table(pa.Table.from_pylist(chunk, schema=schema), tmp, compression="zstd")
                shard_files.append((sha256_file(tmp), tmp))
                task.advance(len(chunk))
        digests = [d for d, _ in shard_files]
        with ws.session() as s:
            ds = s.scalar(select(Dataset).where(Dataset.project_id == ws.project_id, Dataset.name == dataset))
            if ds is None:
                if not create:
                    raise NotFoundError(f"no dataset named '{dataset}'")
                ds = Dataset(id=new_id("ds"), project_id=ws.project_id, name=dataset, format="sft")
                s.add(ds)
                s.flush()
            number = (
                s.scalar(select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == ds.id))
                or 0
            ) + 1
            version = DatasetVersion(
                id=new_id("dv"),
                dataset_id=ds.id,
                number=number,
                content_hash=sha256_json(digests),
                num_rows=len(rows),
                shards=digests,
                schema={f.name: str(f.type) for f in schema},
                stats=compute_stats(rows),
                operation=operation,
                params=params,
                report=report or {},
            )
            s.add(version)
            s.flush()
            for parent in parents:
                s.add(VersionParent(version_id=version.id, parent_id=parent))
            # Move shards into place before the transaction commits: if this fails the version is
            # rolled back; a shard moved for a version that then failed to commit is content-addressed
            # and harmless, and `imts data gc` (see docs) removes it.
            for digest, tmp in shard_files:
                ws.artifacts.commit(tmp, _shard_key(digest), content_addressed=True)
            info = _info(version, ds.name, parents)
    return info


def _shard_key(digest: str) -> str:
    return f"datasets/shards/{digest[:2]}/{digest}.parquet"


def compute_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-field statistics shown by ``imts data show`` and compared by later operations."""
    categories = Counter(r.get("category") or "(none)" for r in rows)
    langs = Counter(r.get("lang") or "(none)" for r in rows)
    prompt_chars = [sum(len(m["content"]) for m in r["messages"][:-1]) for r in rows]
    response_chars = [len(r["messages"][-1]["content"]) for r in rows]
    stats: dict[str, Any] = {
        "rows": len(rows),
        "category": dict(categories.most_common()),
        "lang": dict(langs.most_common()),
        "prompt_chars": _summary(prompt_chars),
        "response_chars": _summary(response_chars),
        "with_answer": sum(1 for r in rows if r.get("answer") is not None),
    }
    if rows and "split" in rows[0]:
        stats["split"] = dict(Counter(r["split"] for r in rows).most_common())
    return stats


def _summary(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    return {
        "min": ordered[0],
        "p50": ordered[n // 2],
        "p95": ordered[min(n - 1, int(n * 0.95))],
        "max": ordered[-1],
        "mean": round(sum(ordered) / n, 1),
    }


def _info(v: DatasetVersion, dataset: str, parents: list[str]) -> VersionInfo:
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
    )


def resolve(ws: Workspace, ref: str) -> DataRef:
    """Parse and look up a dataset reference (see the module docstring)."""
    text, _, split = ref.partition(":") if ref.startswith("dv_") else (ref, "", "")
    with ws.session() as s:
        if text.startswith("dv_"):
            v = s.get(DatasetVersion, text)
            if v is None:
                raise NotFoundError(f"no dataset version '{text}'")
            name = v.dataset.name
        else:
            m = _REF.match(ref)
            if not m:
                raise InputError(f"bad dataset reference '{ref}': expected NAME[@VERSION][:SPLIT]")
            name, split = m["name"], m["split"] or ""
            ds = s.scalar(select(Dataset).where(Dataset.project_id == ws.project_id, Dataset.name == name))
            if ds is None:
                raise NotFoundError(f"no dataset named '{name}' (see `imts data list`)")
            q = select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)
            q = q.where(DatasetVersion.number == int(m["number"])) if m["number"] else q
            v = s.scalar(q.order_by(DatasetVersion.number.desc()).limit(1))
            if v is None:
                raise NotFoundError(f"dataset '{name}' has no version {m['number']}")
        parents = list(s.scalars(select(VersionParent.parent_id).where(VersionParent.version_id == v.id)))
        info = _info(v, name, parents)
    if split and split not in info.stats.get("split", {}):
        have = ", ".join(info.stats.get("split", {})) or "none: split it first with `imts data split`"
        raise NotFoundError(f"{info.ref} has no split '{split}' (splits: {have})")
    return DataRef(info, split or None)


def load_rows(ws: Workspace, ref: DataRef | VersionInfo) -> list[dict[str, Any]]:
    """All rows of a version (or of one split of it), in stored order."""
    version, split = (ref.version, ref.split) if isinstance(ref, DataRef) else (ref, None)
    tables = [pq.read_table(ws.artifacts.path(_shard_key(d))) for d in version.shards]
    rows = pa.concat_tables(tables).to_pylist()
    return [r for r in rows if r.get("split") == split] if split else rows


def list_versions(ws: Workspace, dataset: str | None = None) -> list[VersionInfo]:
    with ws.session() as s:
        q = select(DatasetVersion, Dataset.name).join(Dataset).where(Dataset.project_id == ws.project_id)
        if dataset:
            q = q.where(Dataset.name == dataset)
        return [_info(v, name, []) for v, name in s.execute(q.order_by(Dataset.name, DatasetVersion.number))]
