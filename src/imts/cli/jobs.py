"""`imts jobs`: submit, list, show, logs, pause, resume, cancel, retry, delete."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml

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

app = typer.Typer(help="Jobs: everything long-running, placed on the resource pool.", no_args_is_help=True)


def parse_spec(file: Path | None, overrides: list[str]) -> dict[str, Any]:
    """A job spec from a YAML file plus KEY=VALUE overrides (dotted keys for nesting)."""
    from imts.core.specs import apply_overrides, read_yaml_mapping

    data = read_yaml_mapping(file, "job spec") if file is not None else {}
    return apply_overrides(data, overrides)


@app.command("submit")
@friendly
def submit(
    kind: str = typer.Argument(..., help="train | eval | split | sleep"),
    overrides: list[str] = typer.Argument(
        None, help="Spec fields KEY=VALUE (e.g. seconds=5, run.max_steps=50)."
    ),
    file: Path | None = typer.Option(None, "--file", "-f", help="Job spec YAML."),
    priority: str = typer.Option("normal", help="urgent | high | normal | low"),
    preemptible: bool | None = typer.Option(None, help="Default: every class but urgent."),
    workers: int = typer.Option(1, help="Gang size: all workers start together or not at all."),
    cpus: int = typer.Option(1, help="CPU slots per worker."),
    memory_gb: float = typer.Option(0.5, help="Memory per worker."),
    gpus: int = typer.Option(0, help="Whole GPUs per worker."),
    gpu_type: str | None = typer.Option(None, help="GPU type (any when unset)."),
    mig: str | None = typer.Option(None, help="MIG profile per worker instead of whole GPUs."),
    retries: int = typer.Option(1, help="Retries when the job fails or its worker is lost."),
    name: str = typer.Option("", help="A label."),
    follow: bool = typer.Option(False, "--follow", help="Wait and show progress until it ends."),
    inline: bool = typer.Option(False, "--inline", help="Run it in this process instead (not queued)."),
) -> None:
    """Queue a job; the scheduler places it when its whole gang fits. Refused at once, with the reason,
    when it could never fit the pool or its tenant (CPU/GPU-hours) or project (storage) is over quota."""
    from imts.jobs.pool import Request

    b = backend()
    spec = parse_spec(file, overrides or [])
    options: dict[str, Any] = {
        "name": name,
        "priority": priority,
        "preemptible": preemptible,
        "workers": workers,
        "request": Request(cpus=cpus, memory_gb=memory_gb, gpus=gpus, gpu_type=gpu_type, mig=mig),
        "retries": retries,
    }
    if not (follow or inline):
        console.print(f"[green]queued[/] {b.submit_job(*scope(), kind, spec, **options)}")
        return
    queued: list[str] = []

    def on_queued(job_id: str) -> None:
        queued.append(job_id)
        console.print(f"[green]queued[/] {job_id}")

    result = b.execute(
        *scope(), kind, spec, inline=inline, progress=progress(), on_queued=on_queued, **options
    )
    if inline:
        print_json(result.model_dump(mode="json"))
    else:  # a job that did not succeed raised: "error: job ... failed: ..."
        console.print(f"{queued[0]} [bold]succeeded[/]")


@app.command("list")
@friendly
def list_(
    state: str | None = typer.Option(None, help="Only jobs in this state."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Jobs, newest first, with why a queued job waits."""
    found = backend().list_jobs(*scope(), state)
    if as_json:
        print_views(found)
        return
    rows = []
    for r in found:
        p = r.progress or {}
        info = r.reason or ""
        if r.state == "running" and p.get("total"):
            info = f"{p.get('task')}: {p.get('done', 0):.0f}/{p['total']:.0f}"
        rows.append((r.id, r.kind, r.tenant, r.priority_class, str(r.workers), r.state, str(r.attempt), info))
    columns: tuple[str, ...] = (
        "job",
        "kind",
        "tenant",
        "priority",
        "workers",
        "state",
        "try",
        "progress / reason",
    )
    if any(r.cost is not None for r in found):  # the pool has a price table
        columns += ("cost",)
        rows = [(*row, f"{r.cost:.2f}") for row, r in zip(rows, found, strict=True)]
    console.print(table(columns, rows, ids={"job"}))


@app.command("show")
@friendly
def show(job_id: str) -> None:
    """One job: spec, allocation, state, result and history."""
    r, events = backend().show_job(*scope(), job_id)
    print_json(
        {
            "id": r.id,
            "kind": r.kind,
            "name": r.name,
            "tenant": r.tenant,
            "priority": r.priority_class,
            "preemptible": r.preemptible,
            "state": r.state,
            "reason": r.reason,
            "error": r.error,
            "attempt": r.attempt,
            "retries": f"{r.retries}/{r.max_retries}",
            "workers": r.workers,
            "request": r.request.model_dump(mode="json"),
            "slots": r.slots,
            "worker": {"pid": r.worker_pid, "host": r.worker_host, "heartbeat_ts": r.heartbeat_ts},
            "progress": r.progress,
            "data": r.data,
            "spec": r.spec,
            "events": [
                {
                    "ts": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts)),
                    "kind": e.kind,
                    "message": e.message,
                }
                for e in events
            ],
        }
    )


@app.command("logs")
@friendly
def logs(
    job_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends."),
) -> None:
    """The worker logs of every attempt, each under an ``== attempt N ==`` line; with -f the log as it
    grows until the job ends (or pauses)."""
    b = backend()
    if not follow:
        console.out(b.job_logs(*scope(), job_id), end="", highlight=False)
        return
    attempt = 0
    for event in b.follow_job_logs(*scope(), job_id):
        if event.state is not None:
            console.print(f"[dim]== job {event.state} ==[/]")
            return
        if event.attempt != attempt:
            attempt = event.attempt
            console.print(f"[dim]== attempt {attempt} ==[/]")
        console.out(event.text, end="", highlight=False)


def _action(action: str, job_id: str) -> None:
    if action != "delete":
        job = backend().job_action(*scope(), job_id, action)
        console.print(f"{action} requested for {job_id}; now {job.state}")
        return
    state, handled = backend().delete_job(*scope(), job_id)
    if handled:
        console.print(f"{action} requested for {job_id}; now {state}")
    else:
        console.print(
            f"{action} requested for {job_id}; still {state}: the scheduler has not handled it yet "
            f"(watch: imts jobs show {job_id})"
        )


@app.command("pause")
@friendly
def pause(job_id: str) -> None:
    """Checkpoint and stop a running job (or hold a queued one); it keeps its place to resume."""
    _action("pause", job_id)


@app.command("resume")
@friendly
def resume(job_id: str) -> None:
    """Queue a paused job again; it continues from its checkpoint."""
    _action("resume", job_id)


@app.command("cancel")
@friendly
def cancel(job_id: str) -> None:
    """Stop a job for good."""
    _action("cancel", job_id)


@app.command("retry")
@friendly
def retry(job_id: str) -> None:
    """Queue a failed or cancelled job again, with a fresh retry budget."""
    _action("retry", job_id)


@app.command("delete")
@friendly
def delete(job_id: str) -> None:
    """Delete a finished job and its history."""
    _action("delete", job_id)


@app.command("manifest")
@friendly
def manifest(
    job_id: str,
    fmt: str = typer.Option(
        "volcano",
        "--format",
        help="volcano (batch.volcano.sh Job), pytorchjob, rayjob or raycluster (KubeRay, Volcano gang; "
        "rayjob-kueue / raycluster-kueue: Kueue).",
    ),
    image: str = typer.Option("ghcr.io/imts/imts:latest", help="Container image with IMTS installed."),
    db_secret: str = typer.Option("imts-db", help="Secret whose key 'url' is the database URL."),
) -> None:
    """Print the job as a Kubernetes manifest (gang: minAvailable = workers; queue = tenant)."""
    from imts.core.errors import InputError
    from imts.jobs import k8s, service

    if fmt not in k8s.RENDERERS:
        raise InputError(f"--format must be one of {', '.join(k8s.RENDERERS)}")
    row = service.get(context(), job_id)
    doc = k8s.RENDERERS[fmt](row, max(1, row.attempt), image, db_secret)
    console.out(yaml.safe_dump(doc, sort_keys=False), end="", highlight=False)
