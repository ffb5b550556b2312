"""Writing a version's rows as Parquet shards, batch by batch, with statistics gathered on the way.

Memory bound of a streamed write: the batch being converted (the caller's batch of Python dicts, a few
thousand rows), one Parquet row group being encoded, and 8 bytes per row for the length statistics
(two int32 per row). Nothing else grows with the number of rows, so a 5 GB file imports in the same
memory as a 5 MB one, apart from those 8 bytes per row.
"""

from __future__ import annotations

from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imts.core.hashing import sha256_file

SHARD_ROWS = 100_000
ROW_GROUP_ROWS = 10_000

# Length statistics per format: name -> how to get the text length of a canonical row.
_LENGTHS = {
    "sft": {
        "prompt_chars": lambda r: sum(len(m["content"]) for m in r["messages"][:-1]),
        "response_chars": lambda r: len(r["messages"][-1]["content"]),
    },
    "preference": {
        "prompt_chars": lambda r: len(r["prompt"]),
        "chosen_chars": lambda r: len(r["chosen"]),
        "rejected_chars": lambda r: len(r["rejected"]),
    },
    "classification": {"text_chars": lambda r: len(r["text"])},
    "text": {"text_chars": lambda r: len(r["text"])},
}


class StatsAccumulator:
    """Per-field statistics shown by ``imts data show`` and compared by ``imts data diff``."""

    def __init__(self, dataset_format: str) -> None:
        self.format = dataset_format
        self.rows = 0
        self.counters: dict[str, Counter[str]] = {
            k: Counter() for k in ("category", "lang", "label", "split")
        }
        self.lengths = {k: array("i") for k in _LENGTHS[dataset_format]}
        self.with_answer = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += len(rows)
        for key, counter in self.counters.items():
            if rows and key in rows[0]:
                counter.update(r.get(key) or "(none)" for r in rows)
        for key, fn in _LENGTHS[self.format].items():
            self.lengths[key].extend(fn(r) for r in rows)
        if self.format == "sft":
            self.with_answer += sum(1 for r in rows if r.get("answer") is not None)

    def result(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"rows": self.rows}
        for key in ("category", "lang", "label", "split"):
            if self.counters[key] or (key in ("category", "lang")):
                stats[key] = dict(self.counters[key].most_common())
        for key, values in self.lengths.items():
            stats[key] = summary(np.frombuffer(values, dtype=np.int32)) if len(values) else {}
        if self.format == "sft":
            stats["with_answer"] = self.with_answer
        if not self.counters["split"]:
            stats.pop("split", None)
        if not self.counters["label"]:
            stats.pop("label", None)
        return stats


def summary(values: np.ndarray) -> dict[str, float]:
    ordered = np.sort(values)
    n = len(ordered)
    return {
        "min": int(ordered[0]),
        "p50": int(ordered[n // 2]),
        "p95": int(ordered[min(n - 1, int(n * 0.95))]),
        "max": int(ordered[-1]),
        "mean": round(float(ordered.mean()), 1),
    }


class ShardWriter:
    """Writes row batches into ``stage`` as Parquet files of at most ``SHARD_ROWS`` rows each."""

    def __init__(self, stage: Path, schema: pa.Schema, shard_rows: int | None = None) -> None:
        self.stage = stage
        self.schema = schema
        self.shard_rows = shard_rows or SHARD_ROWS
        self.files: list[tuple[str, Path]] = []  # (sha256 of the bytes, staged path)
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._in_shard = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        start = 0
        while start < len(rows):
            if self._writer is None:
                self._path = self.stage / f"shard-{len(self.files):06d}.parquet"
                self._writer = pq.ParquetWriter(self._path, self.schema, compression="zstd")
            take = min(len(rows) - start, self.shard_rows - self._in_shard)
            table = pa.Table.from_pylist(rows[start : start + take], schema=self.schema)
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self._in_shard += take
            start += take
            if self._in_shard >= self.shard_rows:
                self._close_shard()

    def write_table(self, table: pa.Table) -> None:
        """Append an Arrow table (already in ``schema``), e.g. filtered from an existing version."""
        for batch in table.to_batches(max_chunksize=ROW_GROUP_ROWS):
            self.write(batch.to_pylist())

    def close(self) -> list[tuple[str, Path]]:
        self._close_shard()
        return self.files

    def _close_shard(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        self.files.append((sha256_file(self._path), self._path))
        self._writer, self._path, self._in_shard = None, None, 0
