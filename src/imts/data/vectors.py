"""A version's rows as MiniLM vectors, computed once (on Ray workers when the pool runs on Ray) and
kept in the artifact store beside the version's shards.

The vectors of version ``V`` (or of one split) live at
``datasets/embeddings/<V's id>[-<split>]-minilm.parquet``: one row per dataset row, in stored order,
with its ``id`` and a ``vector`` of 384 float32. Versions are immutable, so the file never goes stale;
a second request reads it back.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from imts.core.progress import NullProgress, Progress
from imts.data import parallel
from imts.data.embeddings import DIM, MODEL, embed
from imts.data.schemas import TEXT_COLUMNS, row_text
from imts.data.versions import DataRef
from imts.store.context import Context

SCHEMA = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), DIM))])


class EmbeddingInfo(BaseModel):
    """Where a version's vectors are and how they were made."""

    version: str = Field(description="NAME@N, or NAME@N:SPLIT")
    rows: int
    dim: int = DIM
    model: str = MODEL
    key: str = Field(description="artifact key of the Parquet file (id, vector)")
    executor: str = Field(description="where they were computed: local, ray, or cached (computed before)")
    pieces: int = 0
    nodes: int = Field(0, description="Ray nodes that computed pieces (0 when not on Ray)")
    seconds: float = 0.0


def embed_rows(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The shard operation: ids and MiniLM vectors of one piece (the text ``dedup`` compares)."""
    texts = [row_text(r) for r in table.to_pylist()]
    return table["id"].combine_chunks(), embed(texts)


parallel.register("embed", embed_rows, columns=lambda fmt: ["id", *TEXT_COLUMNS[fmt]])


def artifact_key(source: DataRef) -> str:
    split = f"-{source.split}" if source.split else ""
    return f"datasets/embeddings/{source.version.id}{split}-minilm.parquet"


def embed_version(ctx: Context, source: DataRef, progress: Progress | None = None) -> EmbeddingInfo:
    """MiniLM vectors of every row of ``source`` (read back when they were computed before)."""
    progress = progress or NullProgress()
    key = artifact_key(source)
    name = str(source)
    if ctx.artifacts.exists(key):
        rows = pq.ParquetFile(ctx.artifacts.path(key)).metadata.num_rows
        return EmbeddingInfo(version=name, rows=rows, key=key, executor="cached")
    t0 = time.perf_counter()
    job = parallel.map_shards(ctx, source, "embed")
    rows = 0
    with ctx.artifacts.staging() as folder:
        tmp = folder / "vectors.parquet"
        with (
            pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer,
            progress.task(f"embedding {name} ({job.executor})", total=source.version.num_rows) as task,
        ):
            for ids, vectors in job:
                flat = pa.array(np.asarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
                column = pa.FixedSizeListArray.from_arrays(flat, DIM).cast(SCHEMA.field("vector").type)
                writer.write_table(pa.table({"id": ids, "vector": column}, schema=SCHEMA))
                rows += len(ids)
                task.advance(len(ids))
        ctx.artifacts.commit(tmp, key, content_addressed=True)  # a concurrent twin wrote the same vectors
    return EmbeddingInfo(
        version=name,
        rows=rows,
        key=key,
        executor=job.executor,
        pieces=len(job.pieces),
        nodes=len(set(job.nodes)),
        seconds=round(time.perf_counter() - t0, 2),
    )


def load_vectors(ctx: Context, source: DataRef) -> tuple[list[str], np.ndarray]:
    """The ids and the (rows, 384) float32 vectors of ``source``, computing them if needed."""
    embed_version(ctx, source)
    table = pq.read_table(ctx.artifacts.path(artifact_key(source)))
    flat = table["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return table["id"].to_pylist(), np.asarray(flat, dtype=np.float32).reshape(-1, DIM)
