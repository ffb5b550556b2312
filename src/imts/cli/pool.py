"""`imts pool show` and `imts scheduler`: the shared resource pool and the process that places jobs."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import typer
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from imts.cli.common import JSON_HELP, console, context, friendly, print_json

app = typer.Typer(help="The shared resource pool.", no_args_is_help=True)


def _eta(row: Any, now: float) -> tuple[float, float, str]:
    p = row.progress or {}
    done, total = float(p.get("done") or 0), float(p.get("total") or 0)
    elapsed = now - (row.started_ts or now)
    if total and done:
        left = elapsed * (total - done) / done
        return (
            done,
            total,
            f"{int(elapsed // 60)}:{int(elapsed % 60):02d} eta {int(left // 60)}:{int(left % 60):02d}",
        )
    return done, total, f"{int(elapsed // 60)}:{int(elapsed % 60):02d} eta -"


def render(ctx: Any) -> Group:
    """Allocation per node, running jobs with bars and ETA, per-tenant share, and the queue."""
    from imts.jobs import service
    from imts.jobs.machine import HOLDING, State
    from imts.jobs.policy import shares
    from imts.jobs.pool import Pool, Slot, load_pool

    now = time.time()
    spec = load_pool(ctx.settings.pool_file)
    pool = Pool(spec)
    rows = service.pool_jobs(ctx)
    running = [r for r in rows if State(r.state) in HOLDING]
    for r in running:
        pool.take([Slot.from_json(s) for s in r.slots or []])
    nodes = Table(title="allocation")
    for col in ("node", "CPU used", "memory GB used", "GPUs free"):
        nodes.add_column(col)
    for n in spec.nodes:
        f = pool.free[n.name]
        gpus = ", ".join(f"{t}: {len(ix)}" for t, ix in f.gpus.items()) or "-"
        mig = ", ".join(f"{t} {p}: {left}" for (t, p), left in f.mig.items())
        nodes.add_row(
            n.name,
            f"{n.cpus - f.cpus}/{n.cpus}",
            f"{n.memory_gb - f.memory_gb:g}/{n.memory_gb:g}",
            gpus + (f"; MIG {mig}" if mig else ""),
        )
    run_t = Table(title="running")
    ids = max([len("job"), *(len(r.id) for r in rows)])  # an id is there to be copied: never folded
    run_t.add_column("job", no_wrap=True, min_width=ids)
    for col in ("kind", "tenant", "state", "workers", "progress", "", "elapsed / ETA"):
        run_t.add_column(col, overflow="fold")
    for r in running:
        done, total, eta = _eta(r, now)
        bar = ProgressBar(total=total or None, completed=done, width=30)
        run_t.add_row(
            r.id,
            r.kind,
            r.tenant,
            r.state,
            str(r.workers),
            bar,
            f"{done:.0f}/{total:.0f}" if total else "",
            eta,
        )
    from imts.jobs.policy import Candidate

    cands = [Candidate(r.id, r.tenant, r.priority, r.workers, r.request, r.submitted_ts) for r in running]
    share = shares(spec, pool, cands)
    ten = Table(title="tenants (weighted dominant share)")
    for col in ("tenant", "weight", "share", "running", "queued"):
        ten.add_column(col)
    names = sorted(
        {r.tenant for r in rows if r.state in ("queued", *[s.value for s in HOLDING])} | set(spec.tenants)
    )
    for t in names:
        ten.add_row(
            t,
            f"{spec.tenant(t).weight:g}",
            f"{share.get(t, 0.0):.1%}",
            str(sum(r.tenant == t for r in running)),
            str(sum(r.tenant == t and r.state == "queued" for r in rows)),
        )
    queue = Table(title="queue")
    queue.add_column("job", no_wrap=True, min_width=ids)
    for col in ("kind", "tenant", "priority", "workers", "waiting", "reason"):
        queue.add_column(col, overflow="fold")
    for r in sorted((r for r in rows if r.state == "queued"), key=lambda r: (-r.priority, r.submitted_ts)):
        queue.add_row(
            r.id, r.kind, r.tenant, r.priority_class, str(r.workers), f"{now - r.submitted_ts:.0f}s", r.reason
        )
    return Group(nodes, run_t, ten, _storage_table(ctx, spec), queue)


def _storage_table(ctx: Any, spec: Any) -> Table:
    """What each project stores against its storage quota (measured at most every storage_refresh_s)."""
    from imts.jobs.storage import fmt_bytes, usage

    t = Table(title="projects (storage)")
    for col in ("project", "datasets", "runs", "reports", "job logs", "total", "quota"):
        t.add_column(col)
    used = usage(ctx)
    for name in sorted(set(used) | set(spec.projects)):
        p = used.get(name)
        quota = spec.project(name).storage_gb
        total = p.total if p else 0
        over = quota is not None and total >= quota * 2**30
        t.add_row(
            name,
            *(fmt_bytes(getattr(p, k, 0)) for k in ("datasets", "runs", "reports", "job_logs")),
            f"[red]{fmt_bytes(total)}[/]" if over else fmt_bytes(total),
            "-" if quota is None else f"{quota:g} GiB" + (" (full: training refused)" if over else ""),
        )
    return t


@app.command("show")
@friendly
def show(
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh every second until Ctrl-C."),
) -> None:
    """Allocation, running jobs (progress and ETA), per-tenant share, per-project storage and quota, and
    the queue with why each job waits."""
    from imts.jobs.service import settle

    ctx = context()
    settle(ctx, wait=True)  # one command, one pass: what it shows is current (the API throttles its reads)
    if not watch:
        console.print(render(ctx))
        return
    from rich.live import Live

    with Live(render(ctx), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1)
            settle(ctx, wait=True)
            live.update(render(ctx))


@app.command("costs")
@friendly
def costs(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """What the tenant's jobs have cost so far, per project: resource-hours x the pool file's ``prices``."""
    from imts.jobs.service import costs as tenant_costs

    summary = tenant_costs(context())
    if as_json:
        print_json(summary.model_dump(mode="json"))
        return
    if not summary.priced:
        console.print("the pool file has no price table (prices: cpu_hour, memory_gb_hour, gpu_hour ...)")
        return
    t = Table(title=f"costs ({summary.currency})")
    for col in ("project", "jobs", "cost"):
        t.add_column(col, justify="left" if col == "project" else "right")
    for p in summary.projects:
        t.add_row(p.project, str(p.jobs), f"{p.cost:.2f}")
    t.add_row("[bold]total[/]", str(sum(p.jobs for p in summary.projects)), f"[bold]{summary.total:.2f}[/]")
    console.print(t)


def scheduler(
    once: bool = typer.Option(False, "--once", help="One scheduling pass, then exit."),
) -> None:
    """Run the scheduler: place queued jobs, watch heartbeats, reconcile after crashes (Ctrl-C stops)."""
    from imts.jobs.loop import Scheduler

    ctx = context()
    sched = Scheduler(ctx)
    if once:
        acted = sched.once()
        console.print("pass done" if acted else "another scheduler holds the lease")
        return
    console.print(f"scheduler {sched.holder} on {', '.join(n.name for n in sched.pool.nodes)}")
    # Its decisions (placements, preemptions, lost workers) and whether it leads or stands by.
    logging.getLogger("imts.jobs.loop").setLevel(logging.INFO)
    # Stop cleanly after the current pass (the lease is given back); Ctrl-C the same way.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sched.stop())
    sched.run()
