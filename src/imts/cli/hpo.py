"""`imts hpo`: hyper-parameter search, each trial a real training run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imts.cli.common import console, friendly, progress, workspace


@friendly
def hpo(
    data_ref: str = typer.Option(..., "--data", help="Dataset reference with train and val splits."),
    base: str = typer.Option(..., "--base", help="Registered base model name."),
    space: Path = typer.Option(
        ..., "--space", help="Search space YAML: field: {low, high[, log, step]} | {choices}."
    ),
    sampler: str = typer.Option("tpe", "--sampler", help="grid, random or tpe."),
    trials: int = typer.Option(10, "--trials", min=1, help="Number of trials (training runs)."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Base run spec YAML."),
    overrides: list[str] = typer.Argument(None, help="Base run-spec overrides KEY=VALUE."),
) -> None:
    """Search hyper-parameters with Optuna (median pruning on validation loss); writes an HTML report."""
    from imts.core.errors import InputError
    from imts.train.hpo import load_space, search
    from imts.train.spec import RunSpec

    if sampler not in ("grid", "random", "tpe"):
        raise InputError(f"unknown sampler '{sampler}': grid, random or tpe", field="sampler")
    spec = RunSpec.from_sources(config, overrides, base_model=base, data=data_ref)
    result = search(workspace(), spec, load_space(space), sampler, trials, seed, progress())  # type: ignore[arg-type]
    table = Table(title=f"hyper-parameter search {result.study_id} ({sampler})")
    for col in ("trial", "state", "val loss", "params", "run"):
        table.add_column(col)
    for t in result.trials:
        value = "" if t["value"] is None else f"{t['value']:.4f}"
        table.add_row(str(t["number"]), t["state"], value, str(t["params"]), str(t["run_id"]))
    console.print(table)
    if result.best_run_id:
        console.print(
            f"[bold green]best[/] run {result.best_run_id}: val loss {result.best_value:.4f} "
            f"with {result.best_params}"
        )
    if result.importances:
        console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in result.importances.items()))
    console.print(f"[green]report[/] {result.report_html}")
