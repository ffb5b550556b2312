"""A dataset's history: diff between two versions, rollback to an old version, lineage graph."""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import pyarrow.dataset as pads
from sqlalchemy import select

from imts.core.errors import ConflictError, InputError, NotFoundError
from imts.data.versions import VersionInfo, record_existing_shards, resolve, shard_path
from imts.store.context import Context
from imts.store.models import Dataset, DatasetVersion, ModelVersion, Run, VersionParent

EXAMPLES = 5
CATEGORICAL_STATS = ("category", "lang", "label", "split")


def diff(ctx: Context, a: VersionInfo, b: VersionInfo, by: Literal["id", "content"] = "id") -> dict[str, Any]:
    """Rows added/removed/changed from ``a`` to ``b``, schema changes and distribution shift.

    Args:
        by: ``id`` matches rows by their id (a changed row keeps its id, its content differs);
            ``content`` compares the multisets of row contents (ids ignored), for sources without
            stable ids.
    """
    if by not in ("id", "content"):
        raise InputError(f"--by must be id or content, not {by!r}")
    common = [c for c in a.columns if c in b.columns and c != "id"]
    content = "md5(to_json(struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in common) + ")))"
    con = duckdb.connect()
    try:
        for name, v in (("a", a), ("b", b)):
            paths = [str(shard_path(ctx, d)) for d in v.shards]
            con.register(f"{name}_raw", pads.dataset(paths, format="parquet"))
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT id, {content} AS h FROM {name}_raw")
        con.execute("SET enable_external_access = false")
        rows = _by_id(con) if by == "id" else _by_content(con)
    finally:
        con.close()
    return {
        "a": a.ref,
        "b": b.ref,
        "by": by,
        "rows": rows,
        "schema": _schema_changes(a.columns, b.columns),
        "shift": distribution_shift(a.stats, b.stats),
        "shared_shards": len(set(a.shards) & set(b.shards)),
    }


def _by_id(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    def ids(sql: str) -> tuple[int, list[str]]:
        n = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]  # type: ignore[index]
        return int(n), [r[0] for r in con.execute(f"{sql} ORDER BY 1 LIMIT {EXAMPLES}").fetchall()]

    added = ids("SELECT b.id FROM b ANTI JOIN a USING (id)")
    removed = ids("SELECT a.id FROM a ANTI JOIN b USING (id)")
    changed = ids("SELECT a.id FROM a JOIN b USING (id) WHERE a.h <> b.h")
    same = con.execute("SELECT count(*) FROM a JOIN b USING (id) WHERE a.h = b.h").fetchone()[0]  # type: ignore[index]
    return {
        "added": added[0],
        "removed": removed[0],
        "changed": changed[0],
        "unchanged": int(same),
        "examples": {"added": added[1], "removed": removed[1], "changed": changed[1]},
    }


def _by_content(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    # Multiset difference: a content seen 3 times in a and once in b counts as 2 removed.
    con.execute(
        "CREATE TEMP VIEW m AS SELECT h, coalesce(na, 0) AS na, coalesce(nb, 0) AS nb, "
        "coalesce(ia, ib) AS example FROM "
        "(SELECT h, count(*) AS na, min(id) AS ia FROM a GROUP BY h) "
        "FULL JOIN (SELECT h, count(*) AS nb, min(id) AS ib FROM b GROUP BY h) USING (h)"
    )
    added, removed, same = con.execute(
        "SELECT sum(greatest(nb - na, 0)), sum(greatest(na - nb, 0)), sum(least(na, nb)) FROM m"
    ).fetchone()  # type: ignore[misc]

    def examples(cond: str) -> list[str]:
        return [
            r[0]
            for r in con.execute(f"SELECT example FROM m WHERE {cond} ORDER BY 1 LIMIT {EXAMPLES}").fetchall()
        ]

    return {
        "added": int(added or 0),
        "removed": int(removed or 0),
        "changed": 0,
        "unchanged": int(same or 0),
        "examples": {"added": examples("nb > na"), "removed": examples("na > nb"), "changed": []},
    }


def _schema_changes(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    return {
        "added": {k: t for k, t in b.items() if k not in a},
        "removed": {k: t for k, t in a.items() if k not in b},
        "retyped": {k: [a[k], b[k]] for k in a if k in b and a[k] != b[k]},
    }


def distribution_shift(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per categorical field: counts, share change, total variation distance; per length field: deltas."""
    out: dict[str, Any] = {}
    for key in CATEGORICAL_STATS:
        ca, cb = a.get(key) or {}, b.get(key) or {}
        if not ca and not cb:
            continue
        na, nb = max(1, sum(ca.values())), max(1, sum(cb.values()))
        values = {}
        for value in sorted(set(ca) | set(cb), key=lambda v: -(ca.get(v, 0) + cb.get(v, 0))):
            sa, sb = ca.get(value, 0) / na, cb.get(value, 0) / nb
            values[value] = {"a": ca.get(value, 0), "b": cb.get(value, 0), "share_change": round(sb - sa, 4)}
        tvd = 0.5 * sum(abs(v["b"] / nb - v["a"] / na) for v in values.values())
        out[key] = {"tvd": round(tvd, 4), "values": values}
    for key in sorted(k for k in set(a) & set(b) if k.endswith("_chars")):
        sa, sb = a[key], b[key]
        if sa and sb:
            out[key] = {
                s: {"a": sa[s], "b": sb[s], "change": round(sb[s] - sa[s], 1)} for s in ("p50", "mean", "p95")
            }
    return out


def rollback(ctx: Context, dataset: str, to: str) -> VersionInfo:
    """A new latest version of ``dataset`` equal to version ``to`` (its shards shared, not copied)."""
    target = resolve(ctx, to if "@" in to or to.startswith("dv_") else f"{dataset}@{to}").version
    latest = resolve(ctx, dataset).version
    if target.dataset != dataset or target.project_id != ctx.project_id:
        raise ConflictError(f"{target.ref} is not a version of this project's dataset '{dataset}'")
    return record_existing_shards(
        ctx,
        dataset,
        target,
        operation="rollback",
        params={"to": target.ref, "from": latest.ref},
        parents=[target.id],
        report={"rolled_back_from": latest.ref, "rows": target.num_rows},
    )


def lineage(ctx: Context, dataset: str) -> dict[str, Any]:
    """The version graph of ``dataset``: each version's operation and parents, and its users.

    Returns:
        ``{"dataset", "versions": [{id, ref, operation, params, rows, parents: [ref], runs: [...],
        models: [...]}]}`` in version order; parents in other datasets are named ``NAME@N``.
    """
    with ctx.session() as s:
        ds = s.scalar(select(Dataset).where(Dataset.project_id == ctx.project_id, Dataset.name == dataset))
        if ds is None:
            raise NotFoundError(f"no dataset named '{dataset}'")
        versions = list(s.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)))
        ids = [v.id for v in versions]
        edges = s.execute(select(VersionParent).where(VersionParent.version_id.in_(ids))).scalars().all()
        parent_ids = {e.parent_id for e in edges}
        names = {
            v.id: f"{name}@{v.number}"
            for v, name in s.execute(
                select(DatasetVersion, Dataset.name)
                .join(Dataset)
                .where(DatasetVersion.id.in_(parent_ids | set(ids)))
            )
        }
        runs = s.scalars(select(Run).where(Run.dataset_version_id.in_(ids)).order_by(Run.created_at)).all()
        models = s.scalars(select(ModelVersion).where(ModelVersion.dataset_version_id.in_(ids))).all()
        out = []
        for v in sorted(versions, key=lambda v: v.number):
            out.append(
                {
                    "id": v.id,
                    "ref": names[v.id],
                    "operation": v.operation,
                    "params": dict(v.params),
                    "rows": v.num_rows,
                    "created_at": v.created_at.isoformat(),
                    "parents": sorted(
                        names.get(e.parent_id, e.parent_id) for e in edges if e.version_id == v.id
                    ),
                    "runs": [
                        {"id": r.id, "kind": r.kind, "status": r.status, "split": r.split}
                        for r in runs
                        if r.dataset_version_id == v.id
                    ],
                    "models": [f"{m.name}:{m.version}" for m in models if m.dataset_version_id == v.id],
                }
            )
    return {"dataset": dataset, "versions": out}
