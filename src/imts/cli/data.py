"""`imts data`: import, list, show and split datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imts.cli.common import console, friendly, print_json, progress, workspace

app = typer.Typer(help="Datasets: import, list, show, split.", no_args_is_help=True)


@app.command("import")
@friendly
def import_(
    file: Path = typer.Argument(..., help="JSON Lines file: prompt/response or chat-messages rows."),
    name: str | None = typer.Option(None, "--name", "-n", help="Dataset name (default: file name)."),
    map_: str | None = typer.Option(
        None, "--map", help="Field mapping, e.g. prompt=question,response=solution,answer=final."
    ),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad line; skip: leave bad lines out."),
) -> None:
    """Import a JSONL file as a new dataset version (atomic: all or nothing)."""
    from imts.core.errors import InputError
    from imts.data.formats import FieldMap
    from imts.data.ingest import import_file

    if on_error not in ("fail", "skip"):
        raise InputError(f"--on-error must be fail or skip, not {on_error!r}")
    v = import_file(workspace(), file, name, FieldMap.parse(map_), on_error, progress())  # type: ignore[arg-type]
    console.print(
        f"[green]imported[/] {v.num_rows} rows as [bold]{v.ref}[/] ({v.id}); mapping {v.report['mapping']}"
    )
    if v.report.get("skipped"):
        console.print(f"[yellow]skipped {v.report['skipped']} bad lines[/]:")
        for e in v.report["errors"][:10]:
            console.print(
                f"  line {e['line']}: {e['reason']}" + (f" (field {e['field']})" if e["field"] else "")
            )


@app.command("list")
@friendly
def list_(dataset: str | None = typer.Argument(None, help="Only this dataset's versions.")) -> None:
    """Datasets and their versions."""
    from imts.data.versions import list_versions

    t = Table()
    for col in ("version", "id", "rows", "operation", "splits", "categories"):
        t.add_column(col)
    for v in list_versions(workspace(), dataset):
        splits = " ".join(f"{k}={n}" for k, n in v.stats.get("split", {}).items())
        cats = " ".join(f"{k}={n}" for k, n in list(v.stats.get("category", {}).items())[:6])
        t.add_row(v.ref, v.id, str(v.num_rows), v.operation, splits, cats)
    console.print(t)


@app.command("show")
@friendly
def show(
    ref: str = typer.Argument(..., help="Dataset reference: NAME, NAME@VERSION, NAME@VERSION:SPLIT."),
    rows: int = typer.Option(3, help="Rows to print."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A version's statistics, lineage, operation report and first rows."""
    from imts.data.versions import load_rows, resolve

    ws = workspace()
    r = resolve(ws, ref)
    sample = load_rows(ws, r)[:rows]
    info = {**r.version.__dict__, "split": r.split, "sample": sample}
    if as_json:
        print_json(info)
        return
    v = r.version
    console.print(f"[bold]{r}[/]  id {v.id}  rows {v.num_rows}  sha256 {v.content_hash[:16]}…")
    console.print(
        f"made by [bold]{v.operation}[/] {json.dumps(v.params, ensure_ascii=False)}"
        + (f" from {', '.join(v.parents)}" if v.parents else "")
    )
    for key in ("split", "category", "lang"):
        if key in v.stats:
            console.print(f"  {key}: " + ", ".join(f"{k} {n}" for k, n in v.stats[key].items()))
    for key in ("prompt_chars", "response_chars"):
        s = v.stats[key]
        console.print(f"  {key}: min {s['min']} median {s['p50']} p95 {s['p95']} max {s['max']}")
    if v.report:
        console.print(
            "report: "
            + json.dumps({k: val for k, val in v.report.items() if k != "errors"}, ensure_ascii=False)[:1500]
        )
    for row in sample:
        console.print(f"[dim]{row['id']}[/] [{row.get('category')}/{row.get('lang')}]")
        for m in row["messages"]:
            console.print(f"  [bold]{m['role']}:[/] {m['content']}", highlight=False)


@app.command("split")
@friendly
def split(
    ref: str = typer.Argument(..., help="Dataset version to split."),
    ratios: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions."),
    seed: int = typer.Option(0),
    stratify_by: str | None = typer.Option("category", help="Field to stratify by ('' for none)."),
    ngram: int = typer.Option(13, help="n of the n-gram overlap rule for decontamination."),
) -> None:
    """Seeded train/val/test split; val/test decontaminated against train (exact + n-gram)."""
    from imts.core.errors import InputError
    from imts.data.split import split_version
    from imts.data.versions import resolve

    try:
        parts = tuple(float(x) for x in ratios.split(","))
    except ValueError:
        raise InputError(f"--ratios must be three numbers like 0.8,0.1,0.1, not {ratios!r}") from None
    ws = workspace()
    v = split_version(ws, resolve(ws, ref), parts, seed, stratify_by or None, ngram, progress())  # type: ignore[arg-type]
    console.print(
        f"[green]split[/] into [bold]{v.ref}[/]: "
        + ", ".join(f"{k} {n}" for k, n in v.stats["split"].items())
    )
