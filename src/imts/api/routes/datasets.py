"""Datasets and their versions: list, show, rows, statistics, diff, lineage, split, dedup, export,
share, roll back, and import from a URL, object storage or a SQL database (uploads: ``uploads.py``).

``{ref}`` is a dataset reference as the CLI takes it: ``NAME``, ``NAME@N``, ``NAME@N:SPLIT``, or a
version id ``dv_...`` (which also reaches a version another project shared with this one).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from imts.api.deps import project_ctx
from imts.core.errors import NotFoundError
from imts.core.permissions import Permission
from imts.data import service
from imts.data.service import VersionInfo
from imts.data.vectors import EmbeddingInfo
from imts.data.views import DatasetDiff, FieldStats, Lineage, RowsPage, SharedVersion, VersionDetail
from imts.store.context import Context

router = APIRouter(prefix="/tenants/{tenant}/projects/{project}/datasets", tags=["datasets"])
View = Annotated[Context, Depends(project_ctx(Permission.DATASET_VIEW))]
Upload = Annotated[Context, Depends(project_ctx(Permission.DATASET_UPLOAD))]
Where = Annotated[str | None, Query(description="read-only SQL filter over the row fields (DuckDB)")]
OnError = Literal["fail", "skip"]


class ImportOptions(BaseModel):
    """How rows are read and mapped (as ``imts data import``'s options)."""

    name: str | None = Field(None, description="dataset name (default: the file's name)")
    map: str | None = Field(None, description="field mapping, e.g. prompt=question,response=solution")
    format: str | None = Field(
        None, description="prompt_response | chat | preference | classification | text"
    )
    type: str | None = Field(
        None, description="jsonl | json | csv | parquet | text | markdown | html | pdf (default: suffix)"
    )
    text_unit: Literal["line", "paragraph"] = "line"
    on_error: OnError = Field("fail", description="fail: stop at the first bad row; skip: leave bad rows out")


class UrlImport(ImportOptions):
    source: str = Field(description="http(s):// or s3:// URL of a .jsonl .json .csv .tsv .parquet .txt file")


class QueryImport(BaseModel):
    url: str = Field(description="database server URL, e.g. postgresql+psycopg://user@host/db")
    sql: str = Field(description="SELECT query whose rows become the dataset")
    name: str
    map: str | None = None
    format: str | None = None
    on_error: OnError = "fail"


class SplitRequest(BaseModel):
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stratify_by: str | None = "category"
    ngram: int = Field(13, ge=1)
    near: float | None = Field(None, gt=0, le=1, description="also drop near-duplicates (Jaccard)")
    into: str | None = Field(None, description="write into this (new) dataset")


class DedupRequest(BaseModel):
    threshold: float = Field(0.7, gt=0, le=1, description="near-duplicate Jaccard threshold")
    exact_only: bool = False
    num_perm: int = Field(128, ge=16, le=1024)
    into: str | None = None


class ShareRequest(BaseModel):
    project: str = Field(description="project of the same tenant that may read the version")


class RollbackRequest(BaseModel):
    to: str = Field(description="version number (or NAME@N) to make the latest again")


@router.get("", response_model=list[VersionInfo])
def list_versions(ctx: View, dataset: str | None = None) -> list[VersionInfo]:
    """The project's dataset versions (of one dataset, or of all)."""
    return service.list_versions(ctx, dataset)


@router.post("/imports", response_model=VersionInfo, status_code=201)
def import_url(body: UrlImport, ctx: Upload) -> VersionInfo:
    """Import a file from a URL or object storage as a new version (all or nothing)."""
    return service.import_remote(
        ctx, body.source, body.name, map_=body.map, fmt=body.format, file_type=body.type,
        text_unit=body.text_unit, on_error=body.on_error,
    )  # fmt: skip


@router.post("/queries", response_model=VersionInfo, status_code=201)
def import_query(body: QueryImport, ctx: Upload) -> VersionInfo:
    """Import the rows of a SQL query against a database server as a new version."""
    return service.import_remote_query(
        ctx, body.url, body.sql, body.name, map_=body.map, fmt=body.format, on_error=body.on_error
    )


@router.get("/{dataset}/versions", response_model=list[VersionInfo])
def dataset_versions(dataset: str, ctx: View) -> list[VersionInfo]:
    """The versions of one dataset."""
    found = service.list_versions(ctx, dataset)
    if not found:
        raise NotFoundError(f"no dataset named '{dataset}'")
    return found


@router.get("/{dataset}/lineage", response_model=Lineage)
def lineage(dataset: str, ctx: View) -> Lineage:
    """The version graph, the operations that made it, and the runs and models that used it."""
    return service.lineage(ctx, dataset)


@router.post("/{dataset}/rollback", response_model=VersionInfo, status_code=201)
def rollback(dataset: str, body: RollbackRequest, ctx: Upload) -> VersionInfo:
    """Make an old version the latest again (a new version sharing its shards)."""
    return service.rollback(ctx, dataset, body.to)


@router.get("/refs/{ref}", response_model=VersionDetail)
def show(ref: str, ctx: View, rows: Annotated[int, Query(ge=0, le=100)] = 3) -> VersionDetail:
    """A version's facts, statistics, operation report and first rows."""
    return service.show(ctx, ref, rows)


@router.get("/refs/{ref}/rows", response_model=RowsPage)
def rows(
    ref: str, ctx: View, where: Where = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10, page: Annotated[int, Query(ge=1)] = 1,
) -> RowsPage:  # fmt: skip
    """One page of the rows matching a filter."""
    return service.preview(ctx, ref, where, limit, page)


@router.get("/refs/{ref}/stats", response_model=FieldStats)
def stats(ref: str, ctx: View, where: Where = None) -> FieldStats:
    """Per-field counts, nulls, distinct values, lengths, top values and languages."""
    return service.stats(ctx, ref, where)


@router.get("/refs/{ref}/diff/{other}", response_model=DatasetDiff)
def diff(ref: str, other: str, ctx: View, by: Literal["id", "content"] = "id") -> DatasetDiff:
    """Rows added, removed and changed, schema changes and distribution shift from ``ref`` to ``other``."""
    return service.diff(ctx, ref, other, by)


@router.post("/refs/{ref}/split", response_model=VersionInfo, status_code=201)
def split(ref: str, body: SplitRequest, ctx: Upload) -> VersionInfo:
    """Seeded train/val/test split, val/test decontaminated against train (a new version)."""
    return service.split_version(
        ctx, ref, body.ratios, body.seed, body.stratify_by or None, body.ngram, body.near, body.into
    )


@router.post("/refs/{ref}/dedup", response_model=VersionInfo, status_code=201)
def dedup(ref: str, body: DedupRequest, ctx: Upload) -> VersionInfo:
    """Remove exact and near duplicates (a new version with a report)."""
    return service.dedup(ctx, ref, None if body.exact_only else body.threshold, body.num_perm, body.into)


@router.post("/refs/{ref}/embeddings", response_model=EmbeddingInfo, status_code=201)
def embeddings(ref: str, ctx: Upload) -> EmbeddingInfo:
    """MiniLM vectors of the version's rows (on the Ray cluster when the pool runs on Ray)."""
    return service.embed(ctx, ref)


@router.post("/refs/{ref}/shares", response_model=SharedVersion, status_code=201)
def share(ref: str, body: ShareRequest, ctx: Upload) -> SharedVersion:
    """Share a version read-only with another project of the tenant."""
    return service.share(ctx, ref, body.project)


EXPORTED = {
    200: {
        "content": {
            m: {"schema": {"type": "string", "format": "binary"}} for m in service.EXPORT_MEDIA.values()
        },
        "description": "the rows, streamed",
    }
}


@router.get("/refs/{ref}/export", response_class=StreamingResponse, responses=EXPORTED)  # type: ignore[arg-type]
def export(ref: str, ctx: View, format: Literal["jsonl", "parquet"] = "jsonl") -> StreamingResponse:
    """Download a version (or one split) as JSON Lines or Parquet, streamed."""
    out = service.export_stream(ctx, ref, format)
    disposition = f'attachment; filename="{out.file_name}"'
    return StreamingResponse(
        out.blocks, media_type=out.media_type, headers={"Content-Disposition": disposition}
    )
