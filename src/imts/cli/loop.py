"""`imts loop`: the closed loop (start, status, log, stop, resume, approve, list, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

app = typer.Typer(
    help="The closed loop: analyse -> repair -> train -> evaluate -> feedback -> next data version, "
    "until a stop rule ends it.",
    no_args_is_help=True,
)


def show(view: Any, lang: str = "en") -> None:
    zh = lang.startswith("zh")
    colour = {"finished": "green", "failed": "red", "stopped": "yellow"}.get(view.status, "cyan")
    console.print(
        f"[bold]{view.name}[/] {view.id}  [{colour}]{view.status}[/]  "
        f"{'迭代' if zh else 'iteration'} {view.iteration} · {view.phase}"
    )
    if view.stop_reason:
        console.print(
            f"{'停止原因' if zh else 'stopped because'}: {view.stop_reason_zh if zh else view.stop_reason_en}"
        )
    if view.error:
        console.print(f"[red]{view.error}[/]")
    if view.outcomes:
        t = Table("iteration", "validation", "target set", "probe drop", "p vs best", "actions")
        for o in view.outcomes:
            drop = "-" if o.probe_drop is None else f"{o.probe_drop * 100:+.1f}"
            t.add_row(
                str(o.iteration), f"{o.decision:.1%}", f"{o.target_score:.1%}", drop, f"{o.p_vs_best:.3g}",
                str(o.actions),
            )  # fmt: skip
        console.print(t)
    if view.best:
        console.print(f"{'最佳' if zh else 'best'}: iteration {view.best['iteration']} ({view.best_run})")
    spent = view.spent
    if spent:
        console.print(
            f"spent: {spent['cpu_hours']:.2f} CPU-h, {spent['gpu_hours']:.2f} GPU-h, "
            f"{int(spent['tokens'])} tokens, {int(spent['generated_items'])} generated rows"
        )


@app.command("start")
@friendly
def start(
    intent: str = typer.Option(..., "--intent", help="What the model should learn, in plain words."),
    data: str = typer.Option(..., "--data", help="Dataset to start from (NAME[@N])."),
    target: float = typer.Option(None, help="Stop once the test accuracy reaches it (0-1)."),
    max_iterations: int = typer.Option(3, "--max-iterations", help="Training iterations at most."),
    patience: int = typer.Option(2, help="Iterations without a significant gain before stopping."),
    cpu_hours: float = typer.Option(None, "--budget-cpu-hours", help="CPU-hour budget of all its jobs."),
    gpu_hours: float = typer.Option(None, "--budget-gpu-hours", help="GPU-hour budget of all its jobs."),
    tokens: int = typer.Option(None, "--budget-tokens", help="Training-token budget."),
    generated: int = typer.Option(None, "--budget-generated", help="Budget of generated/rewritten rows."),
    policy: str = typer.Option(
        "auto", help="auto, or approve: wait for `imts loop approve` before data actions."
    ),
    heldout: list[str] = typer.Option(
        [], "--heldout", help="Extra evaluation set, reported every iteration."
    ),
    probe: str = typer.Option(None, help="General-ability probe dataset ('' for none; default: IMTS's own)."),
    base_model: str = typer.Option(None, "--base-model"),
    eval_items: int = typer.Option(
        None,
        "--eval-items",
        help="Evaluate at most this many items of the validation and test splits and the probe.",
    ),
    heldout_items: int = typer.Option(
        None, "--heldout-items", help="Evaluate at most this many items of each held-out set (default: all)."
    ),
    name: str = typer.Option("", help="The loop's name (default: the dataset's)."),
    train: list[str] = typer.Option([], "--train", help="Training override key=value (repeatable)."),
    tools: str = typer.Option(
        None,
        "--tools",
        help="Decoding tools of every evaluation, the base model's too: a comma list, '' for none "
        "(default: calculator).",
    ),
    teacher: str = typer.Option(
        "embedded",
        help="Who writes the repairs' chains of thought and re-words generated questions: embedded (rules) | "
        "openai (--teacher-url, key from IMTS_CHAT_API_KEY) | local (--teacher-model REGISTRY_REF).",
    ),
    teacher_url: str = typer.Option(None, "--teacher-url", help="OpenAI-compatible endpoint of the teacher."),
    teacher_model: str = typer.Option(
        None, "--teacher-model", help="Model at the endpoint (openai), or a registry ref (local)."
    ),
    detach: bool = typer.Option(False, "--detach", help="Return at once; the scheduler moves the loop on."),
    lang: str = typer.Option("en", help="en | zh"),
) -> None:
    """Start a closed loop and follow it (Ctrl-C leaves it to the scheduler; `imts loop status`)."""
    from imts.flywheel.spec import Budget, LoopSpec

    fields: dict[str, Any] = {
        "intent": intent, "data": data, "target": target, "max_iterations": max_iterations,
        "patience": patience, "policy": policy, "heldout": heldout, "eval_items": eval_items,
        "heldout_items": heldout_items, "name": name,
        "budget": Budget(cpu_hours=cpu_hours, gpu_hours=gpu_hours, tokens=tokens, generated_items=generated),
        "teacher": teacher, "teacher_url": teacher_url, "teacher_model": teacher_model,
    }  # fmt: skip
    if probe is not None:
        fields["probe"] = probe
    if base_model:
        fields["base_model"] = base_model
    if train:
        fields["train"] = train
    if tools is not None:
        from imts.inference.tools import parse

        fields["tools"] = parse(tools)
    b = backend()
    view = b.start_loop(*scope(), _spec(LoopSpec, fields))
    console.print(f"started loop [bold]{view.id}[/]")
    if not detach:
        view = b.follow_loop(*scope(), view.id, progress())
        show(view, lang)


def _spec(cls: Any, fields: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from imts.core.errors import InputError

    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(first["msg"], field=".".join(str(p) for p in first["loc"])) from None


@app.command("status")
@friendly
def status(
    loop: str = typer.Argument(None, help="Loop id (default: the latest)."),
    lang: str = typer.Option("en", help="en | zh"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Where a loop stands: iteration, step, scores so far, what it spent."""
    view = backend().get_loop(*scope(), loop)  # without a scheduler daemon, looking moves it on
    if as_json:
        print_json(view.model_dump(mode="json"))
    else:
        show(view, lang)


@app.command("list")
@friendly
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """The project's loops, newest first."""
    views = backend().list_loops(*scope())
    if as_json:
        print_json([v.model_dump(mode="json") for v in views])
        return
    t = Table("id", "name", "status", "iteration", "phase", "stop reason", no_wrap=True)
    for v in views:
        t.add_row(v.id, v.name, v.status, str(v.iteration), v.phase, v.stop_reason or "")
    console.print(t)


@app.command("log")
@friendly
def log(
    loop: str = typer.Argument(None, help="Loop id (default: the latest)."),
    lang: str = typer.Option("en", help="en | zh"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The iteration log: problem found -> data fix -> gain, with the numbers."""
    from imts.flywheel import report

    b = backend()
    view = b.get_loop(*scope(), loop)
    its = b.loop_log(*scope(), view.id)
    if as_json:
        print_json([i.model_dump(mode="json") for i in its])
        return
    console.print(report.markdown(view, its, lang), markup=False, highlight=False)


@app.command("report")
@friendly
def report_cmd(
    loop: str = typer.Argument(None, help="Loop id (default: the latest)."),
    lang: str = typer.Option("en", help="en | zh"),
    out: Path = typer.Option(
        None, "--out", help="Write the report here (with --server: default LOOP-LANG.FORMAT in this folder)."
    ),
    fmt: str = typer.Option("html", "--format", help="html | md: what --out gets."),
) -> None:
    """Write the loop's report (the rising curve and the log) as Markdown and HTML."""
    from imts.core.errors import InputError

    if fmt not in ("html", "md"):
        raise InputError(f"unknown format '{fmt}': html or md", field="format")
    if lang not in ("en", "zh"):
        raise InputError(f"unknown language '{lang}': en or zh", field="lang")
    b = backend()
    loop_id = b.get_loop(*scope(), loop).id
    if out is None and server_url() is None:  # on this machine: the report's files in the workspace
        from imts.flywheel import report, service

        ctx = context()
        paths = report.write(ctx, service.get(ctx, loop_id), service.iterations(ctx, loop_id), lang)
        console.print(f"[green]report[/] {paths['html']}  {paths['md']}")
        return
    out = out or Path(f"{loop_id}-{lang}.{fmt}")
    text = b.loop_report(*scope(), loop_id, fmt, lang)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    console.print(f"[green]report[/] {out}", highlight=False)


@app.command("stop")
@friendly
def stop(loop: str = typer.Argument(..., help="Loop id.")) -> None:
    """Stop a loop; its running step's job is paused and keeps its checkpoint."""
    show(backend().loop_action(*scope(), loop, "stop"))


@app.command("resume")
@friendly
def resume(
    loop: str = typer.Argument(..., help="Loop id."),
    detach: bool = typer.Option(False, "--detach", help="Return at once; the scheduler moves the loop on."),
) -> None:
    """Go on from where a stopped or failed loop stands (a failed step is tried again), or follow a
    running one again."""
    b = backend()
    # A running loop left by Ctrl-C (no scheduler daemon moving it): follow it again.
    view = b.get_loop(*scope(), loop)
    if view.status not in ("running", "awaiting_approval"):
        view = b.loop_action(*scope(), loop, "resume")
    if not detach:
        view = b.follow_loop(*scope(), loop, progress())
    show(view)


@app.command("approve")
@friendly
def approve(
    loop: str = typer.Argument(..., help="Loop id."),
    detach: bool = typer.Option(False, "--detach", help="Return at once; the scheduler moves the loop on."),
) -> None:
    """Apply the data actions a loop waits on (policy approve); `imts loop log` shows them first."""
    b = backend()
    view = b.loop_action(*scope(), loop, "approve")
    if not detach:
        view = b.follow_loop(*scope(), loop, progress())
    show(view)
