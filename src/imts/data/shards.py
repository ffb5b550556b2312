"""Writing a version's rows as Parquet shards, batch by batch, with statistics gathered on the way.

Memory bound of a streamed write: the batch being converted (the caller's batch of Python dicts, a few
thousand rows), one Parquet row group being encoded, and the statistics, which are of fixed size: an
exact histogram of text lengths per length field (a 512 KiB array for lengths below 65,536 characters,
a dict for longer ones, whose distinct values cannot outnumber the square root of twice the text
volume) and, per categorical field, counts of at most ``MAX_DISTINCT`` values. Nothing grows with the
number of rows, so a 5 GB file imports in the same memory as a 5 MB one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imts.core.hashing import sha256_file

SHARD_ROWS = 100_000
ROW_GROUP_ROWS = 10_000
MAX_DISTINCT = 10_000  # values counted per categorical field; further new values count as "(other)"
_SMALL = 1 << 16  # lengths below this are counted in an array, longer ones in a dict

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
        self.lengths = {k: LengthHistogram() for k in _LENGTHS[dataset_format]}
        self.with_answer = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += len(rows)
        for key, counter in self.counters.items():
            if rows and key in rows[0]:
                for value, n in Counter(r.get(key) or "(none)" for r in rows).items():
                    if value in counter or len(counter) < MAX_DISTINCT:
                        counter[value] += n
                    else:
                        counter["(other)"] += n
        for key, fn in _LENGTHS[self.format].items():
            self.lengths[key].add(np.fromiter((fn(r) for r in rows), dtype=np.int64, count=len(rows)))
        if self.format == "sft":
            self.with_answer += sum(1 for r in rows if r.get("answer") is not None)

    def add_table(self, table: pa.Table) -> None:
        """``add`` for an Arrow table: the same statistics, computed column-wise (SFT tables)."""
        if self.format != "sft":
            self.add(table.to_pylist())
            return
        self.rows += table.num_rows
        for key, counter in self.counters.items():
            if key not in table.column_names:
                continue
            values = pc.fill_null(table.column(key), "")
            for item in pc.value_counts(values).to_pylist():
                value, n = item["values"] or "(none)", item["counts"]
                if value in counter or len(counter) < MAX_DISTINCT:
                    counter[value] += n
                else:
                    counter["(other)"] += n
        messages = table.column("messages").combine_chunks()
        lengths = pc.utf8_length(pc.list_flatten(messages).field("content")).to_numpy(zero_copy_only=False)
        offsets = messages.offsets.to_numpy()
        per_row = np.add.reduceat(lengths, offsets[:-1]) if len(lengths) else np.zeros(0, np.int64)
        response = lengths[offsets[1:] - 1]
        self.lengths["prompt_chars"].add((per_row - response).astype(np.int64))
        self.lengths["response_chars"].add(response.astype(np.int64))
        self.with_answer += table.num_rows - table.column("answer").null_count

    def result(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"rows": self.rows}
        for key in ("category", "lang", "label", "split"):
            if self.counters[key] or (key in ("category", "lang")):
                stats[key] = dict(self.counters[key].most_common())
        for key, hist in self.lengths.items():
            stats[key] = hist.summary()
        if self.format == "sft":
            stats["with_answer"] = self.with_answer
        if not self.counters["split"]:
            stats.pop("split", None)
        if not self.counters["label"]:
            stats.pop("label", None)
        return stats


class LengthHistogram:
    """Exact counts of integer lengths in fixed memory; its summary equals ``summary`` of all values."""

    def __init__(self) -> None:
        self.small = np.zeros(_SMALL, dtype=np.int64)
        self.large: Counter[int] = Counter()

    def add(self, values: np.ndarray) -> None:
        below = values < _SMALL
        self.small += np.bincount(values[below], minlength=_SMALL)
        if not below.all():
            self.large.update(values[~below].tolist())

    def summary(self) -> dict[str, float]:
        (nz,) = np.nonzero(self.small)
        big = sorted(self.large)
        values = np.concatenate([nz, np.array(big, dtype=np.int64)])
        counts = np.concatenate([self.small[nz], np.array([self.large[v] for v in big], dtype=np.int64)])
        n = int(counts.sum())
        if not n:
            return {}
        cum = np.cumsum(counts)

        def at(rank: int) -> int:  # the value at 0-based rank ``rank`` of the sorted values
            return int(values[np.searchsorted(cum, rank, side="right")])

        return {
            "min": int(values[0]),
            "p50": at(n // 2),
            "p95": at(min(n - 1, int(n * 0.95))),
            "max": int(values[-1]),
            "mean": round(float((values * counts).sum() / n), 1),
        }


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
    """Writes row batches into ``stage`` as Parquet files of at most ``SHARD_ROWS`` rows each.

    Rows are cut into row groups of exactly ``ROW_GROUP_ROWS`` (the last one shorter), whatever the
    sizes of the batches they arrive in: the same rows in the same order make the same bytes, so the
    same shard digests and content hash, however they were read (an append that adds nothing is seen
    to be unchanged). Until a row group is full its rows wait as Arrow tables, not Python objects.
    """

    def __init__(self, stage: Path, schema: pa.Schema, shard_rows: int | None = None) -> None:
        self.stage = stage
        self.schema = schema
        self.shard_rows = shard_rows or SHARD_ROWS
        self.files: list[tuple[str, Path]] = []  # (sha256 of the bytes, staged path)
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._in_shard = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._buffer(pa.Table.from_pylist(rows, schema=self.schema))

    def write_table(self, table: pa.Table) -> None:
        """Append an Arrow table (already in ``schema``), e.g. filtered from an existing version."""
        if table.num_rows:
            self._buffer(table.select(self.schema.names).cast(self.schema))

    def close(self) -> list[tuple[str, Path]]:
        self._flush(final=True)
        self._close_shard()
        return self.files

    def _buffer(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write every full row group waiting (and, when ``final``, the last partial one)."""
        if not self._pending_rows:
            return
        waiting = pa.concat_tables(self._pending)
        start = 0
        while waiting.num_rows - start >= ROW_GROUP_ROWS or (final and start < waiting.num_rows):
            if self._writer is None:
                self._path = self.stage / f"shard-{len(self.files):06d}.parquet"
                self._writer = pq.ParquetWriter(self._path, self.schema, compression="zstd")
            take = min(waiting.num_rows - start, ROW_GROUP_ROWS, self.shard_rows - self._in_shard)
            self._writer.write_table(waiting.slice(start, take), row_group_size=ROW_GROUP_ROWS)
            self._in_shard += take
            start += take
            if self._in_shard >= self.shard_rows:
                self._close_shard()
        rest = waiting.slice(start)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _close_shard(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        self.files.append((sha256_file(self._path), self._path))
        self._writer, self._path, self._in_shard = None, None, 0
