"""`imts models`: base models and trained model versions."""

from __future__ import annotations

from pathlib import Path

import typer

from imts.cli.common import JSON_HELP, console, context, friendly, print_views, progress, table

app = typer.Typer(help="Base models (pull, add) and trained model versions.", no_args_is_help=True)


@app.command("pull")
@friendly
def pull(name: str = typer.Argument(..., help="Catalogued model, e.g. smollm2-135m-instruct.")) -> None:
    """Obtain a catalogued base model, convert it once to safetensors, verify and record it."""
    from imts.registry import service

    rec = service.pull_base_model(context(), name, progress())
    console.print(
        f"[green]ready[/] {rec.name}: {rec.architecture}, {rec.num_params:,} parameters, "
        f"context {rec.context_length}, licence {rec.license}\n  {rec.path}\n  source {rec.source}\n"
        f"  sha256 {rec.checksum}"
    )


@app.command("add")
@friendly
def add(
    path: Path = typer.Argument(..., help="Local Hugging Face model folder."),
    name: str | None = typer.Option(None, help="Name to register it under (default: folder name)."),
    license: str | None = typer.Option(None, help="Licence of the weights."),
) -> None:
    """Register a local Hugging Face model folder as a base model (checked to load and generate)."""
    from imts.registry import service

    rec = service.add_base_model(context(), path, name, license)
    console.print(f"[green]registered[/] {rec.name}: {rec.architecture}, {rec.num_params:,} parameters")


@app.command("list")
@friendly
def list_models(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Base models and trained model versions."""
    from imts.registry import service

    ctx = context()
    bases, versions = service.list_base_models(ctx), service.list_model_versions(ctx)
    if as_json:
        print_views({"base_models": bases, "model_versions": versions})
        return
    rows = [
        (
            b.name,
            b.architecture,
            f"{b.num_params / 1e6:.1f}M",
            str(b.context_length),
            b.license or "",
            b.source,
        )
        for b in bases
    ]
    columns = ("name", "architecture", "params", "context", "licence", "source")
    console.print(table(columns, rows, ids={"name"}, title="base models"))
    rows = [
        (
            m.label,
            m.id,
            m.train_run_id or "",
            m.dataset_version_id or "",
            f"loss {m.metrics.get('final_loss', float('nan')):.3f}",
            m.merged_path or "",
        )
        for m in versions
    ]
    columns = ("model", "id", "training run", "dataset version", "metrics", "merged weights")
    console.print(
        table(
            columns,
            rows,
            ids={"id", "training run"},
            title="trained model versions",
        )
    )
