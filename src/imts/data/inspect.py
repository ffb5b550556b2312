"""Preview and statistics of a version with DuckDB, straight over its Parquet shards.

The shards are read by DuckDB's Parquet reader (in parallel, never loaded whole), on a connection that
is locked down first: only the version's shard files may be opened (``allowed_paths``), no other file
or network access, configuration frozen. A user's
``--where`` filter is spliced into one ``SELECT`` and must parse as exactly one SELECT statement, so it
can read the version's rows and nothing else.
"""

from __future__ import annotations

from typing import Any

import duckdb

from imts.core.errors import InputError
from imts.data.versions import DataRef, VersionInfo, shard_path
from imts.store.context import Context

HIST_BINS = 10
TOP_VALUES = 5
# Columns whose most frequent values are worth showing (others are free text).
CATEGORICAL = {"category", "lang", "label", "split"}


def connect(ctx: Context, version: VersionInfo, table: str = "rows") -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection with ``version``'s rows registered as ``table``."""
    paths = [str(shard_path(ctx, d)) for d in version.shards]
    con = duckdb.connect()
    # DuckDB's own parallel Parquet reader, allowed to open exactly these files and nothing else.
    con.execute("SET allowed_paths = ?", [paths])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    files = ", ".join("'{}'".format(p.replace("'", "''")) for p in paths)
    con.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM read_parquet([{files}])")
    return con


def _base_filter(ref: DataRef | VersionInfo) -> tuple[VersionInfo, str]:
    if isinstance(ref, DataRef):
        return ref.version, "split = '{}'".format(ref.split.replace("'", "''")) if ref.split else "TRUE"
    return ref, "TRUE"


def checked_where(con: duckdb.DuckDBPyConnection, where: str | None) -> str:
    """``where`` as a parenthesised SQL expression, refused unless it is a read-only filter."""
    if not where or not where.strip():
        return "TRUE"
    if ";" in where or "--" in where or "/*" in where:
        raise InputError("a --where filter is one SQL expression: no ';' or comments", field="where")
    sql = f"SELECT * FROM rows WHERE ({where})"
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"bad --where expression: {_first_line(exc)}", field="where") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise InputError("a --where filter must be a read-only expression", field="where")
    return f"({where})"


def preview(
    ctx: Context, ref: DataRef | VersionInfo, where: str | None = None, limit: int = 20, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of rows matching ``where`` (DuckDB SQL over the row's fields) and the total matching."""
    version, base = _base_filter(ref)
    con = connect(ctx, version)
    try:
        cond = f"{base} AND {checked_where(con, where)}"
        total = con.execute(f"SELECT count(*) FROM rows WHERE {cond}").fetchone()[0]  # type: ignore[index]
        cur = con.execute(f"SELECT * FROM rows WHERE {cond} LIMIT {int(limit)} OFFSET {int(offset)}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()], int(total)
    except duckdb.Error as exc:
        raise InputError(f"bad --where expression: {_first_line(exc)}", field="where") from None
    finally:
        con.close()


def _length_expr(column: str, type_text: str) -> str | None:
    if type_text == "string":
        return f"length({column})"
    if type_text.startswith("list<") and "content" in type_text:
        return f"list_sum(list_transform({column}, lambda m: length(m.content)))"
    return None


def field_stats(ctx: Context, ref: DataRef | VersionInfo, where: str | None = None) -> dict[str, Any]:
    """Per-field counts, nulls, distinct values, length summary and histogram, and top values.

    Two scans of the shards: one aggregate for nulls and distinct counts of every field, one that
    keeps only the small facts (text lengths, categorical values) in a temporary table that the
    summaries then read.
    """
    version, base = _base_filter(ref)
    con = connect(ctx, version)
    try:
        cond = f"{base} AND {checked_where(con, where)}"
        cols = list(version.columns.items())
        # Distinct counts of nested columns (chat messages) cost more than all the rest and mean little.
        agg = ", ".join(
            f'count(*) FILTER (WHERE "{c}" IS NULL), '
            + ("NULL" if t.startswith("list") else f'approx_count_distinct("{c}")')
            for c, t in cols
        )
        first = con.execute(f"SELECT count(*), {agg} FROM rows WHERE {cond}").fetchone()
        assert first is not None
        total = int(first[0])
        out: dict[str, Any] = {"rows": total, "fields": {}}
        lengths = {c: e for c, t in cols if (e := _length_expr(f'"{c}"', t))}
        categorical = [
            c
            for k, (c, t) in enumerate(cols)
            if c in CATEGORICAL or (t == "string" and (first[2 + 2 * k] or 0) <= 50)
        ]
        facts = [f'{e} AS "len_{c}"' for c, e in lengths.items()] + [f'"{c}"' for c in categorical]
        if facts:
            con.execute(f"CREATE TEMP TABLE facts AS SELECT {', '.join(facts)} FROM rows WHERE {cond}")
        for k, (column, type_text) in enumerate(cols):
            nulls, distinct = int(first[1 + 2 * k]), first[2 + 2 * k]
            info: dict[str, Any] = {"type": type_text, "count": total - nulls, "nulls": nulls}
            if distinct is not None:
                info["distinct"] = int(distinct)
            if column in lengths and total > nulls:
                info["length"] = _length_summary(con, f'"len_{column}"')
            if column in categorical:
                rows = con.execute(
                    f'SELECT "{column}", count(*) AS n FROM facts GROUP BY 1 '
                    f"ORDER BY n DESC, 1 LIMIT {TOP_VALUES}"
                ).fetchall()
                info["top"] = [[v, int(n)] for v, n in rows]
            out["fields"][column] = info
        if "lang" in categorical:
            out["languages"] = {
                str(v): int(n)
                for v, n in con.execute(
                    "SELECT lang, count(*) FROM facts GROUP BY 1 ORDER BY 2 DESC"
                ).fetchall()
            }
        return out
    except duckdb.Error as exc:
        raise InputError(f"bad --where expression: {_first_line(exc)}", field="where") from None
    finally:
        con.close()


def _length_summary(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, Any]:
    lo, p50, p95, hi, mean = con.execute(
        f"SELECT min({column}), quantile_disc({column}, 0.5), quantile_disc({column}, 0.95), max({column}), "
        f"avg({column}) FROM facts WHERE {column} IS NOT NULL"
    ).fetchone()  # type: ignore[misc]
    width = max(1, -(-(int(hi) - int(lo) + 1) // HIST_BINS))
    counts = dict(
        con.execute(
            f"SELECT ({column} - {int(lo)}) // {width} AS b, count(*) FROM facts "
            f"WHERE {column} IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    hist = [
        [int(lo) + b * width, int(lo) + (b + 1) * width - 1, int(counts.get(b, 0))] for b in range(HIST_BINS)
    ]
    return {
        "min": int(lo),
        "p50": int(p50),
        "p95": int(p95),
        "max": int(hi),
        "mean": round(float(mean), 1),
        "histogram": [h for h in hist if h[0] <= int(hi)],
    }


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
