"""`imts pool show | costs | quota` and `imts scheduler`: the shared resource pool, its quotas, and the
process that places jobs."""

from __future__ import annotations

import logging
import re
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


TENANT_HELP = "Tenant (default: the global --tenant, IMTS_TENANT, else 'default')."
# A rejected change names the option the user typed, not the API's field.
OPTIONS = {"max_concurrent": "--max-jobs", "weight": "--weight", "cpu_hours": "--cpu-hours",
           "gpu_hours": "--gpu-hours", "projects": "--storage"}  # fmt: skip


@app.command("quota")
@friendly
def quota(
    max_jobs: str | None = typer.Option(
        None, "--max-jobs", "--max-concurrent", metavar="N|none",
        help="Set the tenant's jobs running at once ('none': no limit).",
    ),
    cpu_hours: str | None = typer.Option(
        None, "--cpu-hours", metavar="X|none",
        help="Set the CPU-slot hours per period ('none': no limit; platform administrators).",
    ),
    gpu_hours: str | None = typer.Option(
        None, "--gpu-hours", metavar="X|none",
        help="Set the GPU hours per period ('none': no limit; platform administrators).",
    ),
    weight: float | None = typer.Option(
        None, "--weight", help="Set the fair-share weight (platform administrators)."
    ),
    storage: list[str] = typer.Option(
        [], "--storage", metavar="[PROJECT=]GIB",
        help="Set a project's storage quota in GiB, e.g. nlp=10 (without PROJECT=: the --project's); "
        "repeatable.",
    ),
    tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:  # fmt: skip
    """The tenant's quotas (jobs at once, CPU/GPU-hours per period, project storage) and what it used this
    period. A --max-jobs, --cpu-hours, --gpu-hours, --weight or --storage sets those first, in the pool
    file (IMTS_POOL_FILE; the server's with --server), audited; the rest keep their value. Setting needs
    manage_resources (a tenant administrator); --weight and the hours, a platform administrator."""
    from imts.services.pool import QuotaUpdate

    b = backend()
    name = tenant or scope()[0]
    given = {"max_concurrent": max_jobs, "cpu_hours": cpu_hours, "gpu_hours": gpu_hours, "weight": weight}
    fields: dict[str, Any] = {k: _limit(v) for k, v in given.items() if v is not None}
    if storage:
        fields["projects"] = _storage(storage, scope()[1])
    view = b.set_quota(name, _change(QuotaUpdate, fields)) if fields else b.quota(name)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    if fields:
        console.print(f"[green]quota set[/] for tenant {view.tenant}")
    console.print(Group(_quota_table(view), _storage_table(view)))
    if view.pool_file is None:
        console.print(
            "no pool file (IMTS_POOL_FILE): the pool is this machine alone; its quotas cannot be set"
        )


def _limit(value: Any) -> Any:
    """``none`` lifts a limit (null); anything else goes to the model, which checks it."""
    return None if isinstance(value, str) and value.strip().lower() == "none" else value


def _storage(values: list[str], project: str) -> dict[str, str]:
    """``[PROJECT=]GIB`` options as project -> GiB (a G, GB or GiB suffix is read as GiB, the pool file's
    unit), checked by the model."""
    out = {}
    for value in values:
        name, sep, amount = value.rpartition("=")
        out[name.strip() if sep else project] = re.sub(r"(?i)\s*(gib|gb|g)$", "", amount.strip())
    return out


def _change(cls: Any, fields: dict[str, Any]) -> Any:
    """``fields`` as the typed change; a refused value names its option (``--storage nlp: ...``)."""
    from pydantic import ValidationError

    from imts.core.errors import InputError

    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = [OPTIONS.get(str(p), str(p)) for p in first["loc"]]
        raise InputError(first["msg"], field=" ".join(where)) from None


def _quota_table(quota: QuotaView) -> Table:
    """The tenant's limits against what it used this period (red: at or over the limit)."""
    t = Table(title=f"quotas of tenant {quota.tenant} (period {quota.period_hours:g} h)")
    for col in ("quota", "limit", "used"):
        t.add_column(col)

    def row(what: str, limit: float | None, used: float, shown: str) -> None:
        over = limit is not None and used >= limit
        t.add_row(what, "-" if limit is None else f"{limit:g}", f"[red]{shown}[/]" if over else shown)

    row("jobs at once", quota.max_concurrent, quota.running, f"{quota.running} running")
    row("CPU-slot hours", quota.cpu_hours, quota.cpu_hours_used, f"{quota.cpu_hours_used:.2f}")
    row("GPU hours", quota.gpu_hours, quota.gpu_hours_used, f"{quota.gpu_hours_used:.2f}")
    t.add_row("fair-share weight", f"{quota.weight:g}", "")
    return t


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
    from imts.jobs import launcher
    from imts.services import kinds

    kinds.start_launcher(ctx.settings)  # a long-lived process: its local workers are forked, as the server's
    try:
        sched.run()
    finally:
        launcher.stop()
