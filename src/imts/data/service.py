"""The data domain's service functions: what the CLI, the API and the loop call for datasets.

Each takes the caller's ``Context`` (tenant and project per call) and returns read models
(``versions.VersionInfo``, ``views``); no ORM row, session or untyped dict leaves. Dataset references
(``NAME[@N][:SPLIT]``, ``dv_...``, ``PROJECT/NAME@N``) resolve only inside the caller's project and
the versions other projects of the same tenant shared with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imts.core.errors import InputError
from imts.core.progress import Progress
from imts.data import cleaning, export, history, ingest, inspect, split, uploads, vectors, versions
from imts.data import merge as merge_
from imts.data.formats import FieldMap
from imts.data.uploads import ChunkWriter, UploadDeclaration, UploadView
from imts.data.vectors import EmbeddingInfo
from imts.data.versions import DataRef, VersionInfo
from imts.data.views import (
    DatasetDiff,
    ExportResult,
    FieldStats,
    Lineage,
    RowsPage,
    SharedVersion,
    VersionDetail,
)
from imts.store.context import Context

__all__ = [
    "DataRef",
    "ExportStream",
    "UploadDeclaration",
    "UploadView",
    "VersionInfo",
    "cancel_upload",
    "check_choice",
    "complete_upload",
    "dedup",
    "diff",
    "export_stream",
    "export_version",
    "import_file",
    "import_query",
    "import_remote",
    "import_remote_query",
    "lineage",
    "list_versions",
    "mapping",
    "merge",
    "preview",
    "resolve",
    "rollback",
    "share",
    "show",
    "split_version",
    "start_upload",
    "stats",
    "upload_chunk",
    "upload_state",
]
# What a server reads on behalf of a remote caller: never its own files (a path, file://, SQLite).
REMOTE_SCHEMES = ("http", "https", "s3")
FILE_DATABASES = ("sqlite", "duckdb")


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices`` (the message names ``option``)."""
    if value not in choices:
        raise InputError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def mapping(map_: str | None = None, fmt: str | None = None) -> FieldMap:
    """A field mapping from its text form (``prompt=question,response=solution``) and a row format."""
    m = FieldMap.parse(map_)
    return FieldMap(**{**m.__dict__, "format": fmt}) if fmt else m


def import_file(
    ctx: Context,
    source: Path | str,
    name: str | None = None,
    *,
    map_: str | None = None,
    fmt: str | None = None,
    file_type: str | None = None,
    text_unit: str = "line",
    on_error: str = "fail",
    progress: Progress | None = None,
    append: bool = False,
) -> VersionInfo:
    """Import a file or URL (``s3://`` with the settings' endpoint) as a new dataset version; with
    ``append``, a version of the dataset's latest rows followed by the file's new ones."""
    check_choice("--on-error", on_error, ("fail", "skip"))
    check_choice("--text-unit", text_unit, ("line", "paragraph"))
    endpoint = ctx.settings.s3_endpoint_url
    opts = {"endpoint_url": endpoint} if endpoint and str(source).startswith("s3://") else None
    return ingest.import_file(
        ctx,
        source,
        name,
        mapping(map_, fmt),
        on_error,  # type: ignore[arg-type]
        progress,
        file_type=file_type,
        text_unit=text_unit,  # type: ignore[arg-type]
        storage_options=opts,
        append=append,
    )


def import_query(
    ctx: Context,
    url: str,
    sql: str,
    name: str,
    *,
    map_: str | None = None,
    fmt: str | None = None,
    on_error: str = "fail",
    progress: Progress | None = None,
) -> VersionInfo:
    """Import the rows of a SQL query against any SQLAlchemy URL as a new dataset version."""
    check_choice("--on-error", on_error, ("fail", "skip"))
    return ingest.import_query(ctx, url, sql, name, mapping(map_, fmt), on_error, progress)  # type: ignore[arg-type]


def merge(ctx: Context, dataset: str, other: str, progress: Progress | None = None) -> VersionInfo:
    """A new version of ``dataset``: its latest rows, then the rows of version ``other`` not already in
    it (both versions are its parents)."""
    return merge_.merge(ctx, dataset, other, progress)


def list_versions(ctx: Context, dataset: str | None = None) -> list[VersionInfo]:
    """This project's dataset versions (of one dataset, or of all), by dataset name and number."""
    return versions.list_versions(ctx, dataset)


def resolve(ctx: Context, ref: str) -> DataRef:
    """A dataset reference to the version (and split) it names; ``NotFoundError`` if not visible here."""
    return versions.resolve(ctx, ref)


def show(ctx: Context, ref: str, rows: int = 3) -> VersionDetail:
    """A version's facts with its first ``rows`` rows (DuckDB reads only those, not the whole version)."""
    r = versions.resolve(ctx, ref)
    sample, _ = inspect.preview(ctx, r, limit=rows)
    split_rows = r.version.stats.get("split", {}).get(r.split) if r.split else None
    return VersionDetail(**r.version.model_dump(), split=r.split, split_rows=split_rows, sample=sample)


def preview(ctx: Context, ref: str, where: str | None = None, limit: int = 10, page: int = 1) -> RowsPage:
    """One page (1-based) of the rows matching ``where`` (read-only DuckDB SQL over the row fields)."""
    page = max(1, page)
    rows, total = inspect.preview(ctx, versions.resolve(ctx, ref), where, limit, (page - 1) * limit)
    return RowsPage(total=total, page=page, limit=limit, rows=rows)


def stats(ctx: Context, ref: str, where: str | None = None) -> FieldStats:
    """Per-field counts, nulls, distinct values, lengths, top values and languages."""
    return FieldStats.model_validate(inspect.field_stats(ctx, versions.resolve(ctx, ref), where))


def diff(ctx: Context, a: str, b: str, by: Literal["id", "content"] = "id") -> DatasetDiff:
    """Rows added/removed/changed, schema changes and distribution shift from version ``a`` to ``b``."""
    va, vb = versions.resolve(ctx, a).version, versions.resolve(ctx, b).version
    return DatasetDiff.model_validate(history.diff(ctx, va, vb, by))


def rollback(ctx: Context, dataset: str, to: str) -> VersionInfo:
    """Make version ``to`` (a number or ``NAME@N``) of this project's ``dataset`` the latest again."""
    return history.rollback(ctx, dataset, to)


def lineage(ctx: Context, dataset: str) -> Lineage:
    """The version graph of this project's ``dataset`` and the runs and models that used it."""
    return Lineage.model_validate(history.lineage(ctx, dataset))


def split_version(
    ctx: Context,
    ref: str,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify_by: str | None = "category",
    ngram: int = 13,
    near: float | None = None,
    into: str | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    """Seeded train/val/test split, val/test decontaminated against train (in this process)."""
    return split.split_version(
        ctx, versions.resolve(ctx, ref), ratios, seed, stratify_by, ngram, progress, near, into
    )


def dedup(
    ctx: Context,
    ref: str,
    threshold: float | None = 0.7,
    num_perm: int = 128,
    into: str | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    """Remove exact and (unless ``threshold`` is None) near duplicates: a new version with a report."""
    return cleaning.dedup_version(ctx, versions.resolve(ctx, ref), threshold, num_perm, into, progress)


def embed(ctx: Context, ref: str, progress: Progress | None = None) -> EmbeddingInfo:
    """MiniLM vectors of a version's (or split's) rows, kept in the artifact store; on Ray workers when
    the pool runs on Ray, read back when computed before."""
    return vectors.embed_version(ctx, versions.resolve(ctx, ref), progress)


def export_version(ctx: Context, ref: str, dest: Path, fmt: str | None = None) -> ExportResult:
    """Write a version (or one split) to JSON Lines, Parquet or a Hugging Face ``datasets`` folder."""
    if fmt:
        check_choice("--format", fmt, ("jsonl", "parquet", "hf"))
    out: dict[str, Any] = export.export(ctx, versions.resolve(ctx, ref), dest, fmt)  # type: ignore[arg-type]
    return ExportResult.model_validate(out)


def share(ctx: Context, ref: str, project: str) -> SharedVersion:
    """Share one of this project's versions read-only with ``project`` of the same tenant."""
    v = versions.share_version(ctx, ref, project)
    return SharedVersion(version=v, project=project, reference=f"{ctx.project}/{v.ref}")


def import_remote(
    ctx: Context,
    url: str,
    name: str | None = None,
    *,
    map_: str | None = None,
    fmt: str | None = None,
    file_type: str | None = None,
    text_unit: str = "line",
    on_error: str = "fail",
) -> VersionInfo:
    """Import a file from a URL (http, https, or s3 with the settings' endpoint) for a remote caller;
    the server's own files are never read this way (upload them instead)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REMOTE_SCHEMES:
        raise InputError(
            f"the source must be a URL ({', '.join(s + '://' for s in REMOTE_SCHEMES)}); "
            "to import a file of your own, upload it",
            field="source",
        )
    return import_file(
        ctx, url, name, map_=map_, fmt=fmt, file_type=file_type, text_unit=text_unit, on_error=on_error
    )


def import_remote_query(
    ctx: Context,
    url: str,
    sql: str,
    name: str,
    *,
    map_: str | None = None,
    fmt: str | None = None,
    on_error: str = "fail",
) -> VersionInfo:
    """``import_query`` for a remote caller: a database server, never a database file on this server."""
    dialect = url.split(":", 1)[0].split("+", 1)[0].lower()
    if dialect in FILE_DATABASES or "://" not in url:
        raise InputError(
            f"the database must be a server (e.g. postgresql+psycopg://user@host/db), not {dialect or url!r}",
            field="url",
        )
    return import_query(ctx, url, sql, name, map_=map_, fmt=fmt, on_error=on_error)


@dataclass(frozen=True)
class ExportStream:
    """An export being written, read block by block; the file is deleted once read or abandoned."""

    file_name: str
    media_type: str
    blocks: Iterator[bytes]


EXPORT_MEDIA = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def export_stream(ctx: Context, ref: str, fmt: str = "jsonl") -> ExportStream:
    """A version (or one split) as JSON Lines or Parquet, written to a staging file and streamed from it."""
    check_choice("format", fmt, tuple(EXPORT_MEDIA))
    r = versions.resolve(ctx, ref)  # now: an unknown reference is an error before anything is sent
    file_name = f"{r.version.dataset}-{r.version.number}{'-' + r.split if r.split else ''}.{fmt}"

    def blocks() -> Iterator[bytes]:
        with ctx.artifacts.staging() as stage:
            out = stage / file_name
            export.export(ctx, r, out, fmt)  # type: ignore[arg-type]
            with out.open("rb") as f:
                while block := f.read(uploads.READ_BLOCK):
                    yield block

    return ExportStream(file_name, EXPORT_MEDIA[fmt], blocks())


def start_upload(ctx: Context, declaration: UploadDeclaration) -> UploadView:
    """Start a chunked upload of a file into this project (see ``data.uploads``)."""
    return uploads.create(ctx, declaration)


def upload_state(ctx: Context, upload_id: str) -> UploadView:
    """Which chunks of the upload the server holds, and which are missing."""
    return uploads.state(ctx, upload_id)


def upload_chunk(ctx: Context, upload_id: str, n: int, sha256: str) -> ChunkWriter:
    """A writer for chunk ``n``: feed it the body as it arrives, then ``finish`` (checks the hash)."""
    return uploads.open_chunk(ctx, upload_id, n, sha256)


def cancel_upload(ctx: Context, upload_id: str) -> UploadView:
    """Delete an upload and the chunks it received."""
    return uploads.cancel(ctx, upload_id)


def complete_upload(
    ctx: Context,
    upload_id: str,
    name: str | None = None,
    *,
    map_: str | None = None,
    fmt: str | None = None,
    file_type: str | None = None,
    text_unit: str = "line",
    on_error: str = "fail",
    progress: Progress | None = None,
) -> VersionInfo:
    """Check the whole file's SHA-256 and import it as ``import_file`` does (errors name the uploaded
    file and line); the upload is deleted once the version is committed, and kept if the import fails."""
    check_choice("on_error", on_error, ("fail", "skip"))
    check_choice("text_unit", text_unit, ("line", "paragraph"))
    with uploads.Completing(ctx, upload_id) as done:
        return ingest.import_file(
            ctx,
            done.path,
            name,
            mapping(map_, fmt),
            on_error,  # type: ignore[arg-type]
            progress,
            file_type=file_type,
            text_unit=text_unit,  # type: ignore[arg-type]
            shown_as=done.up.file_name,
        )
