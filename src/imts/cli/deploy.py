"""`imts deploy add | list | remove`: what `imts serve` serves (followed as aliases move)."""

from __future__ import annotations

import typer

from imts.cli.common import backend, console, friendly, scope

app = typer.Typer(
    help="Deployments: the model aliases (and base models) `imts serve` serves.", no_args_is_help=True
)


@app.command("add")
@friendly
def add(
    model: str = typer.Argument(..., help="Model name (or base model name with --base)."),
    alias: str = typer.Option("production", help="The alias to follow; the server serves where it points."),
    name: str | None = typer.Option(
        None, help="Id clients send as 'model' (default: MODEL, or MODEL@ALIAS for other aliases)."
    ),
    base: bool = typer.Option(False, "--base", help="Serve the base model MODEL itself (no alias)."),
) -> None:
    """Serve MODEL@ALIAS: a running server picks it up on its next request, and after a restart."""
    d = backend().add_deployment(*scope(), model, None if base else alias, name)
    what = d.model if d.alias is None else f"{d.model}@{d.alias}"
    console.print(f"[green]deployed[/] {what} as [bold]{d.name}[/]")


@app.command("list")
@friendly
def list_() -> None:
    """This project's deployments and the version each serves now."""
    from rich.table import Table

    b = backend()
    # What each alias points to now: one read of the project's aliases (the same over the API).
    serving = {(a.model, a.alias): a.label for a in b.alias_state(*scope()).aliases}
    table = Table("name", "model", "alias", "serves now", "by", "since")
    for d in b.list_deployments(*scope()):
        now = "base model"
        if d.alias is not None:
            now = serving.get((d.model, d.alias), "nothing (the alias points nowhere)")
        table.add_row(d.name, d.model, d.alias or "-", now, d.created_by, f"{d.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("remove")
@friendly
def remove(name: str = typer.Argument(..., help="The deployment's name.")) -> None:
    """Stop serving NAME (running servers stop on their next request)."""
    d = backend().remove_deployment(*scope(), name)
    console.print(f"[green]removed[/] deployment {d.name}")
