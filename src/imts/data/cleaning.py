"""Dedup within a version: exact (normalised text) and near duplicates (MinHash LSH), as an operation.

The first occurrence of each group is kept; the result is a new version of the same dataset (or of the
dataset ``into``) whose report gives the counts and examples of what was removed and why.

Streamed in two passes over the version's shards, so memory does not grow with the number of rows:
the first puts each row's normalised text, MinHash signature and LSH keys into working tables on disk
(``scratch``), where the duplicate groups are found; the second writes the rows that are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from imts.core.progress import NullProgress, Progress
from imts.data import dedup, parallel, scratch
from imts.data.schemas import TEXT_COLUMNS, row_text
from imts.data.versions import DataRef, VersionInfo, commit_version, iter_tables
from imts.store.context import Context


def dedup_version(
    ctx: Context,
    source: DataRef | VersionInfo,
    threshold: float | None = dedup.DEFAULT_THRESHOLD,
    num_perm: int = dedup.DEFAULT_NUM_PERM,
    into: str | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    """Remove exact and (unless ``threshold`` is None) near duplicates; a new version with a report."""
    progress = progress or NullProgress()
    version = source.version if isinstance(source, DataRef) else source
    bands, rows_per_band = dedup.optimal_bands(threshold, num_perm) if threshold is not None else (0, 0)
    with ctx.artifacts.staging() as folder:
        con = scratch.connect(folder)
        try:
            con.execute("CREATE TABLE docs (pos BIGINT, id VARCHAR, norm VARCHAR, head VARCHAR)")
            near_tables = (
                scratch.MinHashTables(con, "near", threshold, num_perm) if threshold is not None else None
            )
            n = 0
            hashed = parallel.map_shards(
                ctx, source, "dedup_hash", {"num_perm": num_perm if near_tables is not None else None}
            )
            with progress.task(f"dedup: hashing rows ({hashed.executor})", total=version.num_rows) as task:
                for piece in hashed:
                    rows = len(piece["id"])
                    if not rows:
                        continue
                    pos = np.arange(n, n + rows, dtype=np.int64)
                    scratch.insert(
                        con,
                        "docs",
                        {"pos": pos, "id": piece["id"], "norm": piece["norm"], "head": piece["head"]},
                    )
                    if near_tables is not None:
                        near_tables.add_signatures(pos, piece["sig"])
                    n += rows
                    task.advance(rows)
            con.execute(
                "CREATE TABLE exact AS SELECT d.pos, g.rep FROM docs d JOIN "
                "(SELECT norm, min(pos) AS rep FROM docs GROUP BY norm HAVING count(*) > 1) g USING (norm) "
                "WHERE d.pos <> g.rep"
            )
            if near_tables is not None:
                with progress.task("near-duplicate search", total=None):
                    links = near_tables.links()
                con.execute(f"CREATE TABLE near AS SELECT * FROM {links} ANTI JOIN exact USING (pos)")
            else:
                con.execute("CREATE TABLE near (pos BIGINT, rep BIGINT)")
            n_exact, n_near = (_count(con, t) for t in ("exact", "near"))
            report: dict[str, Any] = {
                "rows_in": n,
                "rows_out": n - n_exact - n_near,
                "exact_removed": n_exact,
                "near_removed": n_near,
                "examples": _examples(con, "exact") + _examples(con, "near"),
            }
            progress.log(
                f"dedup: -{n_exact} exact, -{n_near} near duplicates, {n - n_exact - n_near} rows left"
            )
            drop = scratch.SortedPositions(
                scratch.positions_in(
                    scratch.stream(
                        con,
                        "SELECT pos FROM (SELECT pos FROM exact UNION ALL SELECT pos FROM near) ORDER BY pos",
                    )
                )
            )
            return commit_version(
                ctx,
                dataset=into or version.dataset,
                batches=_kept(ctx, source, drop),
                operation="dedup",
                params={
                    "threshold": threshold,
                    "num_perm": num_perm,
                    "bands": bands,
                    "rows_per_band": rows_per_band,
                    "shingle": dedup.DEFAULT_SHINGLE,
                    "number_weight": dedup.DEFAULT_NUMBER_WEIGHT,
                },
                parents=[version.id],
                report=report,
                create=into is not None,
                dataset_format=version.format,
                progress=progress,
            )
        finally:
            con.close()


def hash_rows(table: pa.Table, num_perm: int | None) -> dict[str, Any]:
    """The per-row keys dedup needs, for one piece of a version: ids, exact keys (``dedup.exact_key``),
    the first 200 characters for examples, and MinHash signatures (None for exact-only)."""
    texts = [row_text(r) for r in table.to_pylist()]
    return {
        "id": table["id"].combine_chunks(),
        "norm": pa.array([dedup.exact_key(t) for t in texts], pa.string()),
        "head": pa.array([t[:200] for t in texts], pa.string()),
        "sig": dedup.MinHasher(num_perm).signatures(texts) if num_perm else None,
    }


parallel.register("dedup_hash", hash_rows, columns=lambda fmt: ["id", *TEXT_COLUMNS[fmt]])


def _kept(
    ctx: Context, source: DataRef | VersionInfo, drop: scratch.SortedPositions
) -> Iterator[list[dict[str, Any]]]:
    pos = 0
    for table in iter_tables(ctx, source):
        mask = drop.mask(pos, pos + table.num_rows)
        pos += table.num_rows
        rows = table.filter(pa.array(~mask)).to_pylist() if mask.any() else table.to_pylist()
        if rows:
            yield rows


def _count(con: Any, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _examples(con: Any, kind: str, n: int = 5) -> list[dict[str, Any]]:
    sql = (
        f"SELECT d.id, r.id, d.head FROM {kind} x JOIN docs d ON d.pos = x.pos JOIN docs r ON r.pos = x.rep "
        f"ORDER BY x.pos LIMIT {n}"
    )
    return [{"id": i, "duplicate_of": j, "kind": kind, "text": t} for i, j, t in con.execute(sql).fetchall()]
