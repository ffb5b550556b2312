"""`imts pool show` and `imts scheduler`: the shared resource pool and the process that places jobs."""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from imts.cli.common import JSON_HELP, backend, console, context, friendly, print_json, scope

if TYPE_CHECKING:
    from imts.services.pool import PoolState, QuotaView

app = typer.Typer(help="The shared resource pool.", no_args_is_help=True)


def _eta(job: Any, now: float) -> tuple[float, float, str]:
    p = job.progress or {}
    done, total = float(p.get("done") or 0), float(p.get("total") or 0)
    elapsed = now - (job.started_ts or now)
    if total and done:
        left = elapsed * (total - done) / done
        return (
            done,
            total,
            f"{int(elapsed // 60)}:{int(elapsed % 60):02d} eta {int(left // 60)}:{int(left % 60):02d}",
        )
    return done, total, f"{int(elapsed // 60)}:{int(elapsed % 60):02d} eta -"


def render(state: PoolState, quota: QuotaView | None = None) -> Group:
    """Allocation per node, running jobs with bars and ETA, per-tenant share, the tenant's projects'
    storage against their quota, and the queue: the same from a local pool or a server's
    (``services.pool.PoolState``, timed as of ``state.at``)."""
    nodes = Table(title="allocation")
    for col in ("node", "CPU used", "memory GB used", "GPUs free"):
        nodes.add_column(col)
    for n in state.nodes:
        gpus = ", ".join(f"{t}: {k}" for t, k in n.gpus_free.items()) or "-"
        mig = ", ".join(f"{t}: {left}" for t, left in n.mig_free.items())
        nodes.add_row(
            n.name,
            f"{n.cpus_used}/{n.cpus}",
            f"{n.memory_gb_used:g}/{n.memory_gb:g}",
            gpus + (f"; MIG {mig}" if mig else ""),
        )
    jobs = [*state.running, *(q.job for q in state.queue)]
    ids = max([len("job"), *(len(j.id) for j in jobs)])  # an id is there to be copied: never folded
    run_t = Table(title="running")
    run_t.add_column("job", no_wrap=True, min_width=ids)
    for col in ("kind", "tenant", "state", "workers", "progress", "", "elapsed / ETA"):
        run_t.add_column(col, overflow="fold")
    for r in state.running:
        done, total, eta = _eta(r, state.at)
        bar = ProgressBar(total=total or None, completed=done, width=30)
        run_t.add_row(
            r.id, r.kind, r.tenant, r.state, str(r.workers), bar, f"{done:.0f}/{total:.0f}" if total else "",
            eta,
        )  # fmt: skip
    ten = Table(title="tenants (weighted dominant share)")
    for col in ("tenant", "weight", "share", "running", "queued"):
        ten.add_column(col)
    for t in [*state.tenants, *([state.others] if state.others else [])]:
        ten.add_row(t.tenant, f"{t.weight:g}", f"{t.share:.1%}", str(t.running), str(t.queued))
    queue = Table(title="queue")
    queue.add_column("job", no_wrap=True, min_width=ids)
    for col in ("kind", "tenant", "priority", "workers", "waiting", "reason"):
        queue.add_column(col, overflow="fold")
    for q in state.queue:
        r = q.job
        queue.add_row(
            r.id, r.kind, r.tenant, r.priority_class, str(r.workers), f"{q.waiting_s:.0f}s", r.reason
        )
    parts = [nodes, run_t, ten, *([_storage_table(quota)] if quota else []), queue]
    return Group(*parts)


def _storage_table(quota: QuotaView) -> Table:
    """What each of the tenant's projects stores against its storage quota (measured at most every
    storage_refresh_s)."""
    from imts.jobs.storage import fmt_bytes

    t = Table(title=f"projects (storage) of tenant {quota.tenant}")
    for col in ("project", "stored", "quota"):
        t.add_column(col)
    for name, p in sorted(quota.projects.items()):
        over = p.storage_gb is not None and p.used_bytes >= p.storage_gb * 2**30
        limit = "-" if p.storage_gb is None else f"{p.storage_gb:g} GiB"
        used = fmt_bytes(p.used_bytes)
        t.add_row(
            name, f"[red]{used}[/]" if over else used, limit + (" (full: training refused)" if over else "")
        )
    return t


@app.command("show")
@friendly
def show(
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh every second until Ctrl-C."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Allocation, running jobs (progress and ETA), per-tenant share, the tenant's projects' storage and
    quota, and the queue with why each job waits (with --server: as the caller may see the pool)."""
    b = backend()
    tenant = scope()[0]

    def current() -> tuple[PoolState, QuotaView]:
        return b.pool_state(tenant), b.quota(tenant)

    state, quota = current()
    if as_json:
        print_json({"pool": state.model_dump(mode="json"), "quota": quota.model_dump(mode="json")})
        return
    if not watch:
        console.print(render(state, quota))
        return
    from rich.live import Live

    with Live(render(state, quota), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(1)
            live.update(render(*current()))


@app.command("costs")
@friendly
def costs(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """What the tenant's jobs have cost so far, per project: resource-hours x the pool file's ``prices``."""
    summary = backend().tenant_costs(scope()[0])
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
