"""`imts data`: import, list, show and split datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from imts.cli.common import (
    backend,
    console,
    context,
    friendly,
    print_json,
    progress,
    scope,
    server_url,
)

if TYPE_CHECKING:
    from imts.data.service import VersionInfo

app = typer.Typer(
    help="Datasets: import, append, merge, inspect, split, dedup, diff, roll back, trace, export, share.",
    no_args_is_help=True,
)


@app.command("import")
@friendly
def import_(
    source: str = typer.Argument(
        ...,
        help="File or URL (s3://...): .jsonl .json .csv .tsv .parquet .txt, documents .pdf .md .html (page "
        "/ section chunks), optionally gzip/zstd/bz2/xz "
        "compressed (.gz .zst .bz2 .xz, or detected from the content); see docs/datasets.md.",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Dataset name (default: file name)."),
    map_: str | None = typer.Option(
        None,
        "--map",
        help="Field mapping, e.g. prompt=question,response=solution,answer=final or text=review,label=stars.",
    ),
    fmt: str | None = typer.Option(
        None,
        "--format",
        help="prompt_response | chat | preference | classification | text (default: detected).",
    ),
    file_type: str | None = typer.Option(
        None, "--type", help="jsonl | json | csv | parquet | text (default: suffix; compression is detected)."
    ),
    text_unit: str = typer.Option("line", help="Plain text: one row per 'line' or per 'paragraph'."),
    on_error: str = typer.Option(
        "fail", help="fail: stop at the first bad row; skip: leave bad rows out and count them by reason."
    ),
    append: bool = typer.Option(
        False,
        "--append",
        help="New version = the dataset's latest rows + this file's rows not already in it (by id and "
        "content); its splits are dropped: split it again.",
    ),
) -> None:
    """Import a file as a new dataset version, or --append its rows to the latest (streamed; atomic).

    With --server: a file of this machine is uploaded in chunks (resumable), a URL fetched by the server."""
    v = backend().import_data(
        *scope(),
        source,
        name,
        map_=map_,
        fmt=fmt,
        file_type=file_type,
        text_unit=text_unit,
        on_error=on_error,
        append=append,
        progress=progress(),
    )
    _print_import(v)


@app.command("query")
@friendly
def query(
    url: str = typer.Argument(
        ..., help="Database URL, e.g. sqlite:///app.db or postgresql+psycopg://u@h/db."
    ),
    sql: str = typer.Argument(..., help="SELECT query whose rows become the dataset."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name."),
    map_: str | None = typer.Option(None, "--map", help="Field mapping (as for import)."),
    fmt: str | None = typer.Option(None, "--format", help="Row format (default: detected)."),
    on_error: str = typer.Option("fail", help="fail | skip."),
) -> None:
    """Import the result of a SQL query as a new dataset version (with --server: the server runs it,
    against a database server only)."""
    v = backend().import_query(
        *scope(), url, sql, name, map_=map_, fmt=fmt, on_error=on_error, progress=progress()
    )
    _print_import(v)


def _print_import(v: VersionInfo) -> None:
    if v.unchanged:
        console.print(
            f"[yellow]unchanged[/]: [bold]{v.ref}[/] ({v.id}), the latest version, holds exactly these "
            f"{v.num_rows} rows already; no new version made"
        )
        return
    if v.operation in ("append", "merge"):
        _print_merged(v)
    else:
        console.print(
            f"[green]imported[/] {v.num_rows} rows as [bold]{v.ref}[/] ({v.id}, {v.format}); "
            f"mapping {v.report['mapping']}"
        )
    formats = v.report.get("row_formats") or {}
    if len(formats) > 1:
        console.print("rows per format / 各格式行数: " + "; ".join(f"{k}: {n}" for k, n in formats.items()))
    if v.report.get("skipped"):
        n = v.report["skipped"]
        console.print(f"[yellow]skipped {n} bad rows / 跳过 {n} 行[/], why:")
        for reason, n in (v.report.get("skipped_by_reason") or {}).items():
            console.print(f"  {n} × {reason}", markup=False, highlight=False)
        console.print("first skipped lines:")
        for e in v.report["errors"][:10]:
            console.print(
                f"  line {e['line']}: {e['reason']}" + (f" (field {e['field']})" if e["field"] else "")
            )


def _print_merged(v: VersionInfo) -> None:
    r = v.report
    console.print(
        f"[green]{v.operation}[/]: [bold]{v.ref}[/] ({v.id}) = {r['base']} ({r['base_rows']} rows) + "
        f"{r['added']} new rows of {r['source']}"
        + (f"; {r['already_present']} already in {r['base']} left out" if r["already_present"] else ""),
        highlight=False,
    )
    if r.get("splits_dropped"):
        console.print(
            f"[yellow]no splits[/]: the new rows have none, so {v.ref} has none; "
            f"split it before training: imts data split {v.ref}"
        )


@app.command("merge")
@friendly
def merge_(
    dataset: str = typer.Argument(..., help="Dataset (of this project) that gets the new version."),
    other: str = typer.Argument(..., help="Version whose rows are added: NAME@N, NAME@N:SPLIT or dv_..."),
) -> None:
    """New version of DATASET = its latest rows + OTHER's rows not already in it; both are its parents."""
    from imts.data import service

    v = service.merge(context(), dataset, other, progress())
    if v.unchanged:
        console.print(
            f"[yellow]unchanged[/]: every row of {other} is in {v.ref} already; no new version made",
            highlight=False,
        )
        return
    _print_merged(v)


@app.command("list")
@friendly
def list_(
    dataset: str | None = typer.Argument(None, help="Only this dataset's versions."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (full ids)."),
) -> None:
    """Datasets and their versions."""
    found = backend().list_datasets(*scope(), dataset)
    if dataset and not found:
        from imts.core.errors import NotFoundError

        raise NotFoundError(f"no dataset '{dataset}' in this project")
    if as_json:
        print_json([v.model_dump(mode="json", by_alias=True, exclude={"unchanged"}) for v in found])
        return
    t = Table()
    for col in ("version", "id", "format", "rows", "operation", "splits", "categories"):
        t.add_column(col)
    for v in found:
        splits = " ".join(f"{k}={n}" for k, n in v.stats.get("split", {}).items())
        cats = " ".join(f"{k}={n}" for k, n in list(v.stats.get("category", {}).items())[:6])
        t.add_row(v.ref, v.id, v.format, str(v.num_rows), v.operation, splits, cats)
    console.print(t)


@app.command("show")
@friendly
def show(
    ref: str = typer.Argument(..., help="Dataset reference: NAME, NAME@VERSION, NAME@VERSION:SPLIT."),
    rows: int = typer.Option(3, help="Rows to print."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A version's statistics, lineage, operation report and first rows."""
    v = backend().show_dataset(*scope(), ref, rows)
    if as_json:
        print_json(v.model_dump(mode="json", by_alias=True))
        return
    if v.split:
        rows_text = f"rows {v.split_rows} (split {v.split}; {v.num_rows} in the whole version)"
    else:
        rows_text = f"rows {v.num_rows}"
    label = v.ref + (f":{v.split}" if v.split else "")
    console.print(f"[bold]{label}[/]  id {v.id}  {rows_text}  sha256 {v.content_hash[:16]}…")
    console.print(
        f"made by [bold]{v.operation}[/] {json.dumps(v.params, ensure_ascii=False)}"
        + (f" from {', '.join(v.parents)}" if v.parents else "")
    )
    if v.split:
        console.print(f"statistics of the whole version ({v.num_rows} rows, every split):")
    for key in ("split", "category", "lang"):
        if key in v.stats:
            console.print(f"  {key}: " + ", ".join(f"{k} {n}" for k, n in v.stats[key].items()))
    for key in (k for k in v.stats if k.endswith("_chars") and v.stats[k]):
        s = v.stats[key]
        console.print(f"  {key}: min {s['min']} median {s['p50']} p95 {s['p95']} max {s['max']}")
    if v.report:
        console.print(
            "report: "
            + json.dumps({k: val for k, val in v.report.items() if k != "errors"}, ensure_ascii=False)[:1500]
        )
    for row in v.sample:
        _print_row(row)


def _print_row(row: dict[str, Any]) -> None:
    console.print(
        f"[dim]{row['id']}[/] [{row.get('category')}/{row.get('lang')}]"
        + (f" split={row['split']}" if row.get("split") else "")
    )
    for m in row.get("messages") or []:
        console.print(f"  [bold]{m['role']}:[/] {m['content']}", highlight=False)
    for key in ("prompt", "chosen", "rejected", "text", "label"):
        if row.get(key) is not None:
            console.print(f"  [bold]{key}:[/] {row[key]}", highlight=False)


@app.command("split")
@friendly
def split(
    ref: str = typer.Argument(..., help="Dataset version to split."),
    ratios: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions."),
    seed: int = typer.Option(0),
    stratify_by: str | None = typer.Option("category", help="Field to stratify by ('' for none)."),
    ngram: int = typer.Option(13, help="n of the n-gram overlap rule for decontamination."),
    near: float | None = typer.Option(
        None,
        help="Also drop val/test near-duplicates of train (MinHash; Jaccard threshold, e.g. 0.7).",
    ),
    into: str | None = typer.Option(None, help="Write into this (new) dataset, e.g. for a shared version."),
    inline: bool = typer.Option(
        True, "--inline/--job", help="Split in this process (default) or as a job on the pool."
    ),
) -> None:
    """Seeded train/val/test split; val/test decontaminated against train (exact, n-gram, near-dup).

    With --server the split runs in the request (the default) or as a job on the server's pool (--job)."""
    from imts.core.errors import InputError
    from imts.data.jobs import SplitResult

    try:
        parts = tuple(float(x) for x in ratios.split(","))
    except ValueError:
        raise InputError(f"--ratios must be three numbers like 0.8,0.1,0.1, not {ratios!r}") from None
    if len(parts) != 3:
        raise InputError(f"--ratios must be three numbers like 0.8,0.1,0.1, not {ratios!r}", field="ratios")
    b = backend()
    if inline:
        v = b.split_dataset(*scope(), ref, parts, seed, stratify_by or None, ngram, near, into, progress())
    else:
        spec = {"data": ref, "ratios": parts, "seed": seed, "stratify_by": stratify_by or None}
        spec |= {"ngram": ngram, "near": near, "into": into}
        v = b.execute(
            *scope(),
            "split",
            spec,
            result=SplitResult,
            progress=progress(),
            on_queued=lambda job_id: console.print(f"[dim]job {job_id} queued[/]"),
        )
    console.print(
        f"[green]split[/] into [bold]{v.version}[/]: " + ", ".join(f"{k} {n}" for k, n in v.counts.items())
    )


@app.command("preview")
@friendly
def preview_(
    ref: str = typer.Argument(..., help="Dataset reference."),
    where: str | None = typer.Option(
        None, help="SQL filter over the row fields, e.g. \"category = 'division'\"."
    ),
    limit: int = typer.Option(10, help="Rows per page."),
    page: int = typer.Option(1, help="Page number (1-based)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Paged rows of a version, filtered with DuckDB SQL (read-only)."""
    p = backend().preview_dataset(*scope(), ref, where, limit, page)
    if as_json:
        print_json(p.model_dump(mode="json"))
        return
    console.print(f"[bold]{p.total}[/] matching rows; page {p.page} of {p.pages}")
    for row in p.rows:
        _print_row(row)


@app.command("stats")
@friendly
def stats(
    ref: str = typer.Argument(..., help="Dataset reference."),
    where: str | None = typer.Option(None, help="Only rows matching this SQL filter."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per-field counts, nulls, distinct values, length histograms, top values and languages."""
    st = backend().dataset_stats(*scope(), ref, where)
    if as_json:
        print_json(st.model_dump(mode="json", exclude_none=True))
        return
    t = Table(title=f"{ref}: {st.rows} rows")
    for col in ("field", "type", "count", "nulls", "distinct", "length min/p50/p95/max", "top values"):
        t.add_column(col)
    for name, f in st.fields.items():
        ln = f.length
        lengths = f"{ln.min}/{ln.p50}/{ln.p95}/{ln.max}" if ln else ""
        top = ", ".join(f"{v} {n}" for v, n in f.top or [])
        distinct = "" if f.distinct is None else str(f.distinct)
        t.add_row(name, f.type[:30], str(f.count), str(f.nulls), distinct, lengths, top)
    console.print(t)
    for name, f in st.fields.items():
        if f.length:
            peak = max(h[2] for h in f.length.histogram) or 1
            console.print(f"[bold]{name}[/] length histogram:")
            for lo, hi, n in f.length.histogram:
                console.print(f"  {lo:>7}-{hi:<7} {'█' * round(30 * n / peak)} {n}")


@app.command("dedup")
@friendly
def dedup_(
    ref: str = typer.Argument(..., help="Dataset version to deduplicate."),
    threshold: float = typer.Option(0.7, help="Near-duplicate Jaccard threshold (MinHash LSH)."),
    exact_only: bool = typer.Option(False, "--exact-only", help="Only exact (normalised) duplicates."),
    num_perm: int = typer.Option(128, help="MinHash permutations."),
    into: str | None = typer.Option(None, help="Write into this (new) dataset instead."),
) -> None:
    """Remove exact and near duplicates within a version (a new version with a report)."""
    v = backend().dedup_dataset(*scope(), ref, None if exact_only else threshold, num_perm, into, progress())
    r = v.report
    console.print(
        f"[green]dedup[/] -> [bold]{v.ref}[/]: {r['rows_in']} -> {r['rows_out']} rows "
        f"(-{r['exact_removed']} exact, -{r['near_removed']} near)"
    )
    for e in r["examples"]:
        console.print(f"  {e['kind']}: {e['id']} ~ {e['duplicate_of']}: {e['text'][:100]}", highlight=False)


@app.command("embed")
@friendly
def embed_(
    ref: str = typer.Argument(..., help="Dataset version (or NAME@N:SPLIT) whose rows to embed."),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the vectors here (.npy; ids in .ids.txt)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """MiniLM vectors of every row (on Ray workers when the pool runs on Ray), kept with the version."""
    from imts.core.errors import InputError

    if out is not None and server_url():
        raise InputError("--out writes the vectors from this machine's workspace: with --server they stay "
                         "on the server, with the version (leave out --out)", field="out")  # fmt: skip
    info = backend().embed_dataset(*scope(), ref, None if as_json else progress())
    if out is not None:
        import numpy as np

        from imts.data import vectors, versions

        ctx = context()
        ids, matrix = vectors.load_vectors(ctx, versions.resolve(ctx, ref))
        np.save(out, matrix)
        out.with_suffix(".ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    if as_json:
        print_json(info.model_dump(mode="json"))
        return
    where = f"{info.executor}" + (f", {info.pieces} pieces on {info.nodes} Ray node(s)" if info.nodes else "")
    console.print(
        f"[green]embedded[/] [bold]{info.version}[/]: {info.rows} rows x {info.dim} ({info.model}; {where}) "
        f"-> {info.key}" + (f", {out}" if out else "")
    )


@app.command("diff")
@friendly
def diff_(
    a: str = typer.Argument(..., help="Old version, e.g. math@1."),
    b: str = typer.Argument(..., help="New version, e.g. math@3."),
    by: str = typer.Option("id", help="Match rows by 'id' or by 'content' hash."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Rows added/removed/changed, schema changes and distribution shift between two versions."""
    d = backend().diff_datasets(*scope(), a, b, by)
    if as_json:
        print_json(d.model_dump(mode="json", by_alias=True))
        return
    r = d.rows
    console.print(
        f"[bold]{d.a} -> {d.b}[/] (by {d.by}): [green]+{r.added}[/] [red]-{r.removed}[/] "
        f"[yellow]~{r.changed}[/] ={r.unchanged}; {d.shared_shards} shards shared"
    )
    for kind, ids in r.examples.items():
        if ids:
            console.print(f"  {kind}: {', '.join(ids)}")
    sc = d.schema_changes
    if sc.added or sc.removed or sc.retyped:
        console.print(f"  schema: added {sc.added} removed {sc.removed} retyped {sc.retyped}")
    for key, shift in d.shift.items():
        if "tvd" in shift:
            moves = ", ".join(f"{v} {x['a']}->{x['b']}" for v, x in list(shift["values"].items())[:8])
            console.print(f"  {key}: TVD {shift['tvd']}: {moves}")
        else:
            console.print(
                f"  {key}: median {shift['p50']['a']}->{shift['p50']['b']}, "
                f"mean {shift['mean']['a']}->{shift['mean']['b']}"
            )


@app.command("rollback")
@friendly
def rollback_(
    dataset: str = typer.Argument(..., help="Dataset name."),
    to: str = typer.Argument(..., help="Version number (or NAME@N) to return to."),
) -> None:
    """Make an old version the latest again (a new version sharing its shards)."""
    v = backend().rollback_dataset(*scope(), dataset, to)
    console.print(f"[green]rolled back[/]: [bold]{v.ref}[/] = {v.params['to']} ({v.num_rows} rows)")


@app.command("lineage")
@friendly
def lineage_(
    dataset: str = typer.Argument(..., help="Dataset name."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The graph of versions, the operations that made them, and the runs and models that used them."""
    g = backend().dataset_lineage(*scope(), dataset)
    if as_json:
        print_json(g.model_dump(mode="json"))
        return
    for v in g.versions:
        src = f" <- {', '.join(v.parents)}" if v.parents else ""
        if v.operation == "append":
            src += f" + {v.params.get('file', '')}"
        console.print(f"[bold]{v.ref}[/] {v.operation}{src}  ({v.rows} rows, {v.id})", highlight=False)
        for r in v.runs:
            console.print(f"    used by {r.kind} run {r.id} ({r.status}, split {r.split})")
        for m in v.models:
            console.print(f"    trained model {m}")


@app.command("export")
@friendly
def export_(
    ref: str = typer.Argument(..., help="Dataset reference (NAME@N:SPLIT exports one split)."),
    dest: Path = typer.Argument(..., help="Output: .jsonl, .parquet, or a folder (Hugging Face datasets)."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl | parquet | hf (default: from DEST)."),
) -> None:
    """Export a version to JSON Lines, Parquet or a Hugging Face `datasets` folder (load_from_disk).

    With --server: the rows are streamed from the server into DEST (.jsonl or .parquet)."""
    if fmt:
        from imts.data.service import check_choice

        check_choice("--format", fmt, ("jsonl", "parquet", "hf"))
    out = backend().export_dataset(*scope(), ref, dest, fmt)
    console.print(f"[green]exported[/] {out.rows} rows to {out.path} ({out.format})")


@app.command("share")
@friendly
def share(
    ref: str = typer.Argument(..., help="Version of this project's dataset to share."),
    project: str = typer.Option(..., "--with", help="Project that may read it."),
) -> None:
    """Share a version read-only with another project (it reads it as PROJECT/NAME@N)."""
    shared = backend().share_dataset(*scope(), ref, project)
    console.print(
        f"[green]shared[/] {shared.version.ref} read-only with project [bold]{shared.project}[/]: "
        f"there it is {shared.reference}"
    )


def _register_fix() -> None:
    from imts.cli import fix

    fix.register(app)


_register_fix()


def _register_analysis() -> None:
    from imts.cli import analyze

    analyze.register(app)


_register_analysis()
