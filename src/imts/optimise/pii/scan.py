"""The personal-data scan of a whole version, piece by piece: in this process, or as Ray tasks on the
pool's cluster (``imts.data.parallel``), with the same result either way.

Every text a row holds is scanned (every message, prompt, chosen and rejected answer, text, the recorded
answer and ``meta``), not only what a model is trained on: a replacement that leaves a phone number in
``meta`` has not removed it. The result names the rows and the kinds of data found, never the values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from imts.core.progress import NullProgress, Progress
from imts.data import parallel
from imts.data.versions import resolve
from imts.store.context import Context

# The columns of each dataset format that can hold text (``meta`` is JSON text).
SCANNED = {
    "sft": ["messages", "answer", "meta"],
    "preference": ["prompt", "chosen", "rejected", "meta"],
    "classification": ["text", "meta"],
    "text": ["text", "meta"],
}
EXAMPLE_IDS = 20  # row ids listed per kind of data


def _texts(row: dict[str, Any]) -> list[str]:
    out = []
    for key, value in row.items():
        if key == "messages":
            out += [m["content"] for m in value or [] if m.get("content")]
        elif key != "id" and isinstance(value, str) and value:
            out.append(value)
    return out


def scan_rows(table: pa.Table) -> tuple[int, list[tuple[str, list[str]]]]:
    """For one piece: its rows, and ``(row id, kinds of personal data found)`` of each row holding any,
    in row order."""
    from imts.optimise.pii.engine import find  # Presidio loads here, once per process (a Ray worker too)

    found = []
    for row in table.to_pylist():
        kinds = sorted({s.entity for text in _texts(row) for s in find(text)})
        if kinds:
            found.append((row["id"], kinds))
    return table.num_rows, found


parallel.register("pii_scan", scan_rows, columns=lambda fmt: ["id", *SCANNED[fmt]])


class PiiScan(BaseModel):
    """Where a version holds personal data: how many rows, of which kinds, and which rows."""

    version: str
    rows: int
    rows_with_pii: int
    by_kind: dict[str, int]  # kind of data -> rows holding it
    examples: dict[str, list[str]]  # kind -> the first row ids holding it
    row_ids: list[str]  # every row holding any, in row order
    executor: str  # local | ray
    nodes: int  # Ray nodes the pieces ran on (0 in this process)


def scan_version(ctx: Context, ref: str, progress: Progress | None = None) -> PiiScan:
    """Scan every row of version (or split) ``ref`` for personal data, split over the pool's executor."""
    progress = progress or NullProgress()
    source = resolve(ctx, ref)
    job = parallel.map_shards(ctx, source, "pii_scan")
    by_kind: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    row_ids: list[str] = []
    rows = 0
    with progress.task("personal-data scan", total=len(job.pieces)) as task:
        for n, found in job:
            rows += n
            for row_id, kinds in found:
                row_ids.append(row_id)
                for kind in kinds:
                    by_kind[kind] += 1
                    if len(ex := examples.setdefault(kind, [])) < EXAMPLE_IDS:
                        ex.append(row_id)
            task.advance()
    return PiiScan(
        version=str(source), rows=rows, rows_with_pii=len(row_ids), by_kind=dict(by_kind),
        examples=examples, row_ids=row_ids, executor=job.executor, nodes=len(set(job.nodes)),
    )  # fmt: skip
