"""`imts runs`: list and inspect training and evaluation runs."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select

from imts.cli.common import console, context, friendly, print_json

app = typer.Typer(help="Training and evaluation runs.", no_args_is_help=True)


@app.command("list")
@friendly
def list_runs(kind: str | None = typer.Option(None, help="train or eval")) -> None:
    """Runs, newest first."""
    from imts.store.models import Run

    ctx = context()
    with ctx.session() as s:
        q = select(Run).order_by(Run.created_at.desc())
        runs = list(s.scalars(q.where(Run.kind == kind) if kind else q))
    t = Table()
    for col in ("run", "kind", "status", "model / data", "result"):
        t.add_column(col)
    for r in runs:
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
        t.add_row(
            r.id,
            r.kind,
            r.status,
            f"{r.spec.get('model') or r.spec.get('base_model')} / {r.spec.get('data')}",
            result if r.status != "failed" else (r.error or "")[:80],
        )
    console.print(t)


@app.command("show")
@friendly
def show(run_id: str) -> None:
    """One run: spec, summary, events."""
    from imts.core.errors import NotFoundError
    from imts.store.models import Run, RunEvent

    ctx = context()
    with ctx.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run '{run_id}'")
        events = [
            {"step": e.step, "kind": e.kind, "message": e.message}
            for e in s.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id))
        ]
        print_json(
            {
                "id": run.id,
                "kind": run.kind,
                "status": run.status,
                "spec": run.spec,
                "summary": run.summary,
                "error": run.error,
                "output_dir": run.output_dir,
                "created_at": run.created_at,
                "finished_at": run.finished_at,
                "events": events,
            }
        )
