"""Dedup within a version: exact (normalised text) and near duplicates (MinHash LSH), as an operation.

The first occurrence of each group is kept; the result is a new version of the same dataset (or of the
dataset ``into``) whose report gives the counts and examples of what was removed and why.
"""

from __future__ import annotations

from typing import Any

from imts.core.progress import NullProgress, Progress
from imts.data import dedup
from imts.data.schemas import row_text
from imts.data.split import normalise
from imts.data.versions import DataRef, VersionInfo, commit_version, load_rows
from imts.store.workspace import Workspace


def dedup_version(
    ws: Workspace,
    source: DataRef | VersionInfo,
    threshold: float | None = dedup.DEFAULT_THRESHOLD,
    num_perm: int = dedup.DEFAULT_NUM_PERM,
    into: str | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    """Remove exact and (unless ``threshold`` is None) near duplicates; a new version with a report."""
    progress = progress or NullProgress()
    version = source.version if isinstance(source, DataRef) else source
    rows = load_rows(ws, source)
    texts = [row_text(r) for r in rows]
    exact = dedup.exact_duplicates([normalise(t) for t in texts])
    near: dict[int, int] = {}
    if threshold is not None:
        with progress.task("near-duplicate search", total=len(rows)) as task:
            found = dedup.near_duplicates(texts, threshold, num_perm)
            task.advance(len(rows))
        near = {i: j for i, j in found.items() if i not in exact}
    drop = set(exact) | set(near)
    kept = [r for i, r in enumerate(rows) if i not in drop]
    bands, rows_per_band = dedup.optimal_bands(threshold, num_perm) if threshold is not None else (0, 0)
    report: dict[str, Any] = {
        "rows_in": len(rows),
        "rows_out": len(kept),
        "exact_removed": len(exact),
        "near_removed": len(near),
        "examples": dedup.examples(rows, exact, row_text, "exact")
        + dedup.examples(rows, near, row_text, "near"),
    }
    progress.log(f"dedup: -{len(exact)} exact, -{len(near)} near duplicates, {len(kept)} rows left")
    return commit_version(
        ws,
        dataset=into or version.dataset,
        rows=kept,
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
    )
