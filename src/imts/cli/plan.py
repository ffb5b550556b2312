"""`imts plan`: how much memory a fine-tune needs per device, and how to fit it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from imts.cli.common import console, friendly, print_json


@friendly
def plan(
    model: str = typer.Option(
        ..., "--model", help="Known config (llama-3-70b, qwen2.5-7b, ...), registered base model or folder."
    ),
    gpus: str = typer.Option("1xA100-80GB", "--gpus", help="COUNTxGPU per node (8xA100-80GB, 1xL4) or cpu."),
    method: str | None = typer.Option(None, "--method", help="full, lora or qlora (default: compare all)."),
    batch: int = typer.Option(1, "--batch", help="Micro-batch (sequences per device per forward)."),
    seq: int = typer.Option(4096, "--seq", help="Sequence length in tokens."),
    precision: str = typer.Option(
        "bf16",
        "--precision",
        help="bf16 (mixed precision) or fp32; with --gpus cpu, what this CPU trains in.",
    ),
    nodes: int = typer.Option(1, "--nodes", help="Number of nodes with --gpus each."),
    lora_rank: int = typer.Option(16, "--lora-rank"),
    write_config: Path | None = typer.Option(
        None, "--write-config", help="Write the accelerate/DeepSpeed config of the choice into this folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Estimate memory per device (weights, gradients, optimizer, activations) for every strategy."""
    from imts.core.errors import InputError
    from imts.train.plan.service import make_plan, plan_dict, resolve_arch

    if method not in (None, "full", "lora", "qlora"):
        raise InputError(f"unknown method '{method}': full, lora or qlora", field="method")
    if precision not in ("bf16", "fp32"):
        raise InputError(f"unknown precision '{precision}': bf16 or fp32", field="precision")
    ctx = _workspace_if_any()
    arch = resolve_arch(model, ctx)
    result = make_plan(arch, gpus, method, batch, seq, precision, nodes, lora_rank)  # type: ignore[arg-type]
    written: list[Path] = []
    # Asked to write a config when nothing fits: the plan is still shown (it says why), then exit 2.
    nothing = (
        InputError(f"wrote no config into {write_config}: {result.why}", field="write-config")
        if write_config is not None and result.chosen is None
        else None
    )
    if write_config is not None and result.chosen is not None:
        from imts.train.plan.configs import write_configs

        written = write_configs(result, write_config)
    if as_json:
        print_json({**plan_dict(result), "configs": [str(p) for p in written]})
        if nothing is not None:
            raise nothing
        return
    data = plan_dict(result)
    table = Table(
        title=f"{arch.name} ({data['params'] / 1e9:.2f}B params) on {data['hardware']}, micro-batch "
        f"{batch} x {seq} tokens, {data['precision']}: GiB per device ({data['usable_gib_per_device']:.1f} "
        "usable)"
    )
    for col in ("method", "strategy", "weights", "grads", "optim", "activ.", "logits", "other", "total"):
        table.add_column(col, justify="left" if col in ("method", "strategy") else "right")
    table.add_column("fits")
    table.add_column("rel. time", justify="right")
    for o in data["options"]:
        chosen = data["chosen"] == {"method": o["method"], "strategy": o["strategy"]}
        style = "bold green" if chosen else (None if o["fits"] else "dim")
        table.add_row(
            o["method"],
            o["strategy"] + (" *" if chosen else ""),
            *(_g(o[k]) for k in ("weights", "gradients", "optimizer", "activations", "logits", "overhead")),
            _g(o["total"]),
            "yes" if o["fits"] else "no",
            f"{o['rel_time']:.2f}",
            style=style,
        )
    console.print(table)
    console.print(("[bold green]recommended:[/] " if result.chosen else "[bold red]") + result.why)
    for p in written:
        console.print(f"[green]wrote[/] {p}")
    if nothing is not None:
        raise nothing


def _g(x: float) -> str:
    return f"{x:.1f}" if x >= 0.1 or x == 0 else f"{x:.2f}"


def _workspace_if_any() -> Any:
    """The workspace when one exists (to find registered base models); planning needs none."""
    from imts.core.settings import get_settings

    settings = get_settings()
    if settings.database_url is None and not (settings.workspace / "imts.db").exists():
        return None
    from imts.cli.common import context

    return context()
