"""`imts runs`: list, inspect and compare training and evaluation runs."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from imts.cli.common import (
    JSON_HELP,
    backend,
    console,
    context,
    friendly,
    print_json,
    print_views,
    progress,
    scope,
    table,
)

app = typer.Typer(help="Training and evaluation runs.", no_args_is_help=True)


@app.command("list")
@friendly
def list_runs(
    kind: str | None = typer.Option(None, help="train or eval"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Runs, newest first."""
    found = backend().list_runs(*scope(), kind)
    if as_json:
        print_views(found)
        return
    rows = []
    for r in found:
        if r.kind == "eval":
            result = (
                f"accuracy {r.summary['accuracy']:.1%} (n={r.summary['n']})"
                if "accuracy" in r.summary
                else ""
            )
        else:
            result = (
                f"loss {r.summary['final_loss']:.3f} -> {r.summary.get('model_version')}"
                if "final_loss" in r.summary
                else ""
            )
        rows.append(
            (
                r.id,
                r.kind,
                r.status,
                f"{r.spec.get('model') or r.spec.get('base_model')} / {r.spec.get('data')}",
                result if r.status != "failed" else (r.error or "")[:80],
            )
        )
    console.print(table(("run", "kind", "status", "model / data", "result"), rows, ids={"run"}))


@app.command("show")
@friendly
def show(run_id: str) -> None:
    """One run: spec, summary, events."""
    rec, events = backend().show_run(*scope(), run_id)
    run = rec.run
    env = rec.environment
    print_json(
        {
            **run.model_dump(
                include={
                    "id",
                    "kind",
                    "status",
                    "spec",
                    "summary",
                    "error",
                    "output_dir",
                    "created_at",
                    "finished_at",
                }
            ),
            "events": [e.model_dump(include={"step", "kind", "message"}) for e in events],
            # the package list is long: `runs compare` shows the packages that differ
            "environment": {k: v for k, v in env.items() if k != "packages"},
        }
    )


@app.command("compare")
@friendly
def compare(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    all_params: bool = typer.Option(False, "--all", help="Also list the spec keys all runs share."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Runs side by side: the spec keys that differ, and their summary metrics."""
    cmp = backend().compare_runs(*scope(), run_ids)
    if as_json:
        print_json(cmp.model_dump(mode="json"))
        return
    t = Table()
    t.add_column("")
    for r in cmp.runs:
        t.add_column(f"{r.id}\n{r.kind} {r.status}")
    keys = list(cmp.params) if all_params else cmp.differing
    for key in keys:
        t.add_row(key, *(_cell(v) for v in cmp.params[key]))
    if keys and cmp.metrics:
        t.add_section()
    for key, values in cmp.metrics.items():
        t.add_row(key, *(_cell(v) for v in values))
    if cmp.environment_differing:
        t.add_section()
    for key in cmp.environment_differing:
        t.add_row(key, *(_cell(v) for v in cmp.environment[key]))
    console.print(t)
    if not all_params:
        same = len(cmp.params) - len(cmp.differing)
        console.print(f"{len(cmp.differing)} spec keys differ, {same} are equal (--all lists them)")
    console.print(
        f"environment (code version, packages, hardware, seeds): {len(cmp.environment_differing)} "
        "entries differ"
    )


@app.command("reproduce")
@friendly
def reproduce(
    run_id: str = typer.Argument(..., help="A training run."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Re-run a training run from its record (spec, dataset version, base model, seed) and compare its
    per-step losses with the original's; exit code 1 when they differ."""
    from imts.train.service import reproduce as run_again

    rep = run_again(context(), run_id, progress())
    if as_json:
        print_json(rep.model_dump(mode="json"))
    elif rep.identical:
        console.print(
            f"[green]reproduced[/] {rep.original} as {rep.reproduced}: {rep.steps} steps, "
            "every loss identical"
        )
    else:
        console.print(
            f"[yellow]differs[/] {rep.original} vs {rep.reproduced}: first at step {rep.first_difference}, "
            f"largest loss difference {rep.max_abs_diff:.3g} over {rep.steps} steps"
        )
    for key, values in rep.environment_differences.items():
        console.print(f"  environment differs: {key}: {' vs '.join(map(str, values))}")
    if not rep.identical:
        raise typer.Exit(1)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
