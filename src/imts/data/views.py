"""Read models of the data domain beyond ``versions.VersionInfo``: what ``data.service`` returns.

They are the API's response models; the CLI renders them. Rows of a dataset stay plain dicts inside
them (their fields depend on the dataset's format).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imts.data.versions import VersionInfo


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class VersionDetail(VersionInfo):
    """A version with the split asked for and its first rows (``imts data show``)."""

    split: str | None = None
    split_rows: int | None = None  # rows of ``split`` (``num_rows`` counts the whole version)
    sample: list[dict[str, Any]] = Field(default_factory=list)


class RowsPage(_View):
    """One page of a version's rows matching a filter, and how many match in all."""

    total: int
    page: int
    limit: int
    rows: list[dict[str, Any]]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // max(1, self.limit)))


class LengthSummary(_View):
    min: int
    p50: int
    p95: int
    max: int
    mean: float
    histogram: list[tuple[int, int, int]]  # (low, high, rows) per bin


class FieldSummary(_View):
    type: str
    count: int
    nulls: int
    distinct: int | None = None
    length: LengthSummary | None = None
    top: list[tuple[Any, int]] | None = None  # (value, rows), most frequent first


class FieldStats(_View):
    """Per-field statistics of a version (or of the rows matching a filter)."""

    rows: int
    fields: dict[str, FieldSummary]
    languages: dict[str, int] | None = None


class DiffRows(_View):
    added: int
    removed: int
    changed: int
    unchanged: int
    examples: dict[str, list[str]]  # "added" | "removed" | "changed" -> a few row ids


class SchemaChanges(_View):
    added: dict[str, str]
    removed: dict[str, str]
    retyped: dict[str, tuple[str, str]]


class DatasetDiff(_View):
    """Rows added/removed/changed, schema changes and distribution shift from version ``a`` to ``b``."""

    a: str
    b: str
    by: str
    rows: DiffRows
    schema_changes: SchemaChanges = Field(alias="schema")
    shift: dict[str, dict[str, Any]]  # per field: categorical TVD and shares, or length deltas
    shared_shards: int


class LineageRun(_View):
    id: str
    kind: str
    status: str
    split: str | None = None


class LineageNode(_View):
    id: str
    ref: str
    operation: str
    params: dict[str, Any]
    rows: int
    created_at: datetime
    parents: list[str]
    runs: list[LineageRun]
    models: list[str]


class Lineage(_View):
    """A dataset's version graph: operations, parents, and the runs and models that used each version."""

    dataset: str
    versions: list[LineageNode]


class ExportResult(_View):
    path: str
    format: str
    rows: int


class SharedVersion(_View):
    """A version shared read-only with another project, and the reference that project reads it by."""

    version: VersionInfo
    project: str
    reference: str
