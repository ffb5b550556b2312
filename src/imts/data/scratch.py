"""Out-of-core working tables for operations over whole versions (dedup, split decontamination).

An operation streams a version's shards batch by batch and puts only compact per-row keys into a
DuckDB database in its staging folder: normalised texts, n-gram hashes, MinHash signatures and LSH
bucket keys. The set operations (group, join) run in DuckDB under ``MEMORY_LIMIT``; what does not fit
spills to the staging folder. Python holds one batch at a time, so an operation's memory does not grow
with the number of rows; its disk use does (and disappears with the staging folder).

Near-duplicate links follow ``dedup.candidate_links`` exactly: within every LSH band, each document is
linked to the lowest position in its bucket (for ``ref`` tables other than the query table: the lowest
reference position); a link counts when the estimated Jaccard similarity of the two signatures reaches
the threshold; each document keeps its lowest verified link.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from imts.data import dedup

MEMORY_LIMIT = "256MB"
FETCH_ROWS = 50_000


def connect(folder: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB database in ``folder`` (a staging folder) that spills beyond ``MEMORY_LIMIT``."""
    con = duckdb.connect(str(folder / "scratch.duckdb"))
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{folder / 'spill'}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET threads = 2")
    return con


def insert(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, pa.Array | np.ndarray]) -> None:
    """Append columns (Arrow arrays or numpy arrays of equal length) to ``table``."""
    batch = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})
    con.from_arrow(batch).insert_into(table)


def stream(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[pa.RecordBatch]:
    """The result of ``sql`` as Arrow record batches of at most ``FETCH_ROWS`` rows (read through a cursor
    of its own, so ``con`` can insert while the result is consumed)."""
    cur = con.cursor()
    try:
        yield from cur.sql(sql).to_arrow_reader(FETCH_ROWS)
    finally:
        cur.close()


class MinHashTables:
    """MinHash signatures and LSH bucket keys of documents, in ``{name}_sig`` and ``{name}_bands``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        threshold: float,
        num_perm: int = dedup.DEFAULT_NUM_PERM,
    ) -> None:
        self.con, self.name, self.threshold, self.num_perm = con, name, threshold, num_perm
        self.bands, self.rows = dedup.optimal_bands(threshold, num_perm)
        self.hasher = dedup.MinHasher(num_perm)
        con.execute(f"CREATE TABLE {name}_sig (pos BIGINT, sig BLOB)")
        con.execute(f"CREATE TABLE {name}_bands (band SMALLINT, key UBIGINT, pos BIGINT)")

    def add(self, positions: np.ndarray, texts: Sequence[str]) -> None:
        if len(texts):
            self.add_signatures(positions, self.hasher.signatures(texts))

    def add_signatures(self, positions: np.ndarray, sigs: np.ndarray) -> None:
        """Add documents whose MinHash signatures were computed elsewhere (``dedup.MinHasher`` of the
        same ``num_perm``: e.g. on Ray workers)."""
        if not len(sigs):
            return
        sigs = np.ascontiguousarray(sigs, dtype=np.uint32)
        width = 4 * self.num_perm
        blob = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(sigs), [None, pa.py_buffer(sigs)])
        insert(self.con, f"{self.name}_sig", {"pos": positions, "sig": blob})
        keys = np.concatenate([dedup.band_keys(sigs, b, self.rows) for b in range(self.bands)])
        band = np.repeat(np.arange(self.bands, dtype=np.int16), len(sigs))
        insert(
            self.con, f"{self.name}_bands", {"band": band, "key": keys, "pos": np.tile(positions, self.bands)}
        )

    def links(self, ref: MinHashTables | None = None, where: str = "TRUE") -> str:
        """Create table ``{name}_links(pos, rep)``: each query document's lowest verified link to a
        reference document (``ref``; itself when None: links to earlier duplicates). ``where``
        filters the query documents (a SQL condition on ``q.pos``). Returns the table's name."""
        con, out = self.con, f"{self.name}_links"
        same = ref is None
        r = self if ref is None else ref
        con.execute(f"CREATE TABLE {out}_all (pos BIGINT, rep BIGINT)")
        pairs = f"""
            WITH reps AS (
                SELECT band, key, min(pos) AS rep FROM {r.name}_bands GROUP BY band, key
                {"HAVING count(*) > 1" if same else ""}
            ), pairs AS (
                SELECT DISTINCT q.pos, reps.rep FROM {self.name}_bands q JOIN reps USING (band, key)
                WHERE q.pos <> reps.rep AND ({where})
            )
            SELECT pairs.pos, pairs.rep, qs.sig AS qsig, rs.sig AS rsig FROM pairs
            JOIN {self.name}_sig qs ON qs.pos = pairs.pos JOIN {r.name}_sig rs ON rs.pos = pairs.rep
        """
        for batch in stream(con, pairs):
            q = _sigs(batch.column("qsig"), self.num_perm)
            s = _sigs(batch.column("rsig"), self.num_perm)
            keep = (q == s).mean(axis=1) >= self.threshold
            if keep.any():
                pos = batch.column("pos").to_numpy()[keep]
                rep = batch.column("rep").to_numpy()[keep]
                insert(con, f"{out}_all", {"pos": pos, "rep": rep})
        con.execute(f"CREATE TABLE {out} AS SELECT pos, min(rep) AS rep FROM {out}_all GROUP BY pos")
        con.execute(f"DROP TABLE {out}_all")
        return out


def _sigs(column: pa.Array, num_perm: int) -> np.ndarray:
    return np.frombuffer(b"".join(column.to_pylist()), dtype=np.uint32).reshape(-1, num_perm)


def positions_in(batches: Iterator[pa.RecordBatch]) -> Iterator[np.ndarray]:
    """Sorted int64 positions from a stream of one-column batches."""
    for batch in batches:
        yield batch.column(0).to_numpy()


class SortedPositions:
    """Membership of increasing positions in a sorted stream of positions, consumed once."""

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self._chunks = chunks
        self._buf = np.empty(0, dtype=np.int64)
        self._done = False

    def mask(self, start: int, stop: int) -> np.ndarray:
        """Boolean mask over positions ``start..stop-1``: True where the position is in the stream."""
        while not self._done and (not len(self._buf) or self._buf[-1] < stop):
            nxt = next(self._chunks, None)
            if nxt is None:
                self._done = True
            else:
                self._buf = np.concatenate([self._buf, nxt])
        here = self._buf[(self._buf >= start) & (self._buf < stop)]
        self._buf = self._buf[self._buf >= stop]
        out = np.zeros(stop - start, dtype=bool)
        out[here - start] = True
        return out
