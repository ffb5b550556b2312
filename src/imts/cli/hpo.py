"""`imts hpo`: hyper-parameter search; every trial is a `train` job on the pool (or, --inline, a run in
this process)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from imts.cli.common import console, context, friendly, progress

if TYPE_CHECKING:
    from imts.train.hpo import HpoResult


@friendly
def hpo(
    data_ref: str | None = typer.Option(None, "--data", help="Dataset reference with train and val splits."),
    base: str | None = typer.Option(None, "--base", help="Registered base model name."),
    space: Path | None = typer.Option(
        None, "--space", help="Search space YAML: field: {low, high[, log, step]} | {choices}."
    ),
    sampler: str = typer.Option("tpe", "--sampler", help="grid, random or tpe."),
    trials: int = typer.Option(10, "--trials", min=1, help="Number of trials (training runs)."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Base run spec YAML."),
    parallel: int = typer.Option(
        1, "--parallel", min=1, help="Trial jobs queued at once (the scheduler decides how many run)."
    ),
    priority: str = typer.Option("normal", help="Priority class of the trial jobs."),
    cpus: int = typer.Option(1, help="CPU slots per trial job."),
    resume: str | None = typer.Option(
        None, "--resume", help="Continue study hpo_... (after Ctrl-C or a crash); other options ignored."
    ),
    inline: bool = typer.Option(
        False, "--inline", help="Run the trials in this process, one after another, not as jobs."
    ),
    overrides: list[str] = typer.Argument(None, help="Base run-spec overrides KEY=VALUE."),
) -> None:
    """Search hyper-parameters with Optuna (median pruning on validation loss); writes an HTML report.

    Each trial is a `train` job: queued, fair-shared, preemptible and resumed like any job. This command
    drives the study (it holds no pool slot) and follows it; Ctrl-C leaves the trial jobs running and
    the study resumable with --resume. Without a scheduler daemon it also runs scheduling passes.
    """
    from imts.core.errors import InputError
    from imts.train import hpo_jobs
    from imts.train.hpo import load_space, search
    from imts.train.spec import RunSpec

    ctx = context()
    if resume is None:
        if sampler not in ("grid", "random", "tpe"):
            raise InputError(f"unknown sampler '{sampler}': grid, random or tpe", field="sampler")
        if data_ref is None or base is None or space is None:
            raise InputError("--data, --base and --space are required (or --resume STUDY)")
        spec = RunSpec.from_sources(config, overrides, base_model=base, data=data_ref)
        searched = load_space(space)
        if inline:
            result = search(ctx, spec, searched, sampler, trials, seed, progress())  # type: ignore[arg-type]
            _show(result, sampler)
            return
        resume = hpo_jobs.create(
            ctx,
            spec,
            searched,
            sampler,  # type: ignore[arg-type]
            trials,
            seed,
            parallel,
            priority,
            cpus,
        )
        console.print(f"[green]study[/] {resume}: {trials} trial jobs, {parallel} at a time")
    try:
        result = hpo_jobs.drive(ctx, resume, progress())
    except KeyboardInterrupt:
        console.print(
            f"[yellow]left study {resume}[/]: its trial jobs keep running; "
            f"`imts hpo --resume {resume}` continues it, `imts jobs cancel` stops a trial"
        )
        raise typer.Exit(130) from None
    _show(result, sampler if data_ref else "")


def _show(r: HpoResult, sampler: str) -> None:
    table = Table(title=f"hyper-parameter search {r.study_id}" + (f" ({sampler})" if sampler else ""))
    for col in ("trial", "state", "val loss", "params", "run"):
        table.add_column(col)
    for t in r.trials:
        value = "" if t["value"] is None else f"{t['value']:.4f}"
        table.add_row(str(t["number"]), t["state"], value, str(t["params"]), str(t["run_id"]))
    console.print(table)
    if r.best_run_id:
        best = f"val loss {r.best_value:.4f} with {r.best_params}"
        console.print(f"[bold green]best[/] run {r.best_run_id}: {best}")
    if r.importances:
        console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in r.importances.items()))
    console.print(f"[green]report[/] {r.report_html}")
