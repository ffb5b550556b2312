"""Export a version (or one split of it) to JSON Lines, Parquet, or a Hugging Face ``datasets`` object.

Files are written batch by batch from the shards (bounded memory) into a temporary file next to the
destination and renamed into place, so a failed export leaves no half-written file. A ``datasets``
object is backed by an Arrow file written the same way and memory-mapped, never built in memory: a
version is immutable, so that file is kept in the store (``datasets/hf/``) and reused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from imts.core.errors import InputError
from imts.data.versions import DataRef, VersionInfo, iter_tables
from imts.store.context import Context

ExportFormat = Literal["jsonl", "parquet", "hf"]


def export(
    ctx: Context, ref: DataRef | VersionInfo, dest: Path, fmt: ExportFormat | None = None
) -> dict[str, Any]:
    """Write ``ref``'s rows to ``dest``; ``fmt`` from the suffix if not given (a folder for ``hf``).

    Returns:
        ``{"path", "format", "rows"}``.
    """
    fmt = fmt or format_of(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        ds = to_hf(ctx, ref)
        ds.save_to_disk(str(dest))
        return {"path": str(dest), "format": fmt, "rows": len(ds)}
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        if fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as f:
                for table in iter_tables(ctx, ref):
                    for row in table.to_pylist():
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += table.num_rows
        else:
            writer: pq.ParquetWriter | None = None
            for table in iter_tables(ctx, ref):
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                rows += table.num_rows
            if writer is None:
                raise InputError("nothing to export: the selection holds no rows")
            writer.close()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(dest), "format": fmt, "rows": rows}


def to_hf(ctx: Context, ref: DataRef | VersionInfo) -> Any:
    """The rows as a memory-mapped ``datasets.Dataset`` (same columns and Arrow types as the shards)."""
    import datasets

    version, split = (ref.version, ref.split) if isinstance(ref, DataRef) else (ref, None)
    key = f"datasets/hf/{version.id}{'-' + split if split else ''}.arrow"
    if not ctx.artifacts.exists(key):
        with ctx.artifacts.staging() as stage:
            tmp = stage / "rows.arrow"
            writer: pa.ipc.RecordBatchStreamWriter | None = None
            for table in iter_tables(ctx, ref):
                writer = writer or pa.ipc.new_stream(str(tmp), table.schema)
                writer.write_table(table)
            if writer is None:
                raise InputError("nothing to export: the selection holds no rows")
            writer.close()
            ctx.artifacts.commit(tmp, key, content_addressed=True)
    return datasets.Dataset.from_file(str(ctx.artifacts.path(key)), in_memory=False)


def count_rows(path: Path, fmt: ExportFormat) -> int:
    """The rows of an exported JSON Lines or Parquet file (a download, counted as ``export`` counts)."""
    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def format_of(dest: Path) -> ExportFormat:
    """The export format ``dest``'s suffix names (no suffix: a Hugging Face folder)."""
    suffix = dest.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if not suffix:
        return "hf"
    raise InputError(f"cannot tell the export format from '{dest.name}': use .jsonl, .parquet or a folder")
