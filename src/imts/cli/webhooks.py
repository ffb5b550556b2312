"""`imts webhooks add | list | remove | test`: a tenant's webhooks (locally, or on --server)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from imts.cli.common import backend, console, friendly, scope

app = typer.Typer(
    help="A tenant's webhooks: job.finished, job.failed, watchdog, loop.iteration events, POSTed signed "
    "(HMAC-SHA256, header X-IMTS-Signature) with retries.",
    no_args_is_help=True,
)
TENANT_HELP = "Tenant (default: the global --tenant, IMTS_TENANT, else 'default')."


def _tenant(name: str | None) -> str:
    return name or scope()[0]


@app.command("add")
@friendly
def add(
    url: str = typer.Argument(..., help="http(s) URL the events are POSTed to."),
    events: list[str] = typer.Option(
        [],
        "--event",
        "-e",
        help="job.finished | job.failed | watchdog | loop.iteration (repeat; default: all).",
    ),
    description: str = typer.Option("", "--description", help="A label."),
    tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP),
) -> None:
    """Add a webhook; its signing secret is printed this once."""
    h = backend().add_webhook(_tenant(tenant), url, events, description)
    console.print(f"webhook {h.id} -> {h.url} ({', '.join(h.events)}); its signing secret, shown only now:")
    sys.stdout.write(h.secret + "\n")


@app.command("list")
@friendly
def list_(tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP)) -> None:
    """The tenant's webhooks."""
    t = Table(title="webhooks")
    for col in ("id", "url", "events", "description", "created by", "created"):
        t.add_column(col)
    for h in backend().list_webhooks(_tenant(tenant)):
        t.add_row(h.id, h.url, " ".join(h.events), h.description, h.created_by, str(h.created_at))
    console.print(t)


@app.command("remove")
@friendly
def remove(
    webhook_id: str = typer.Argument(...),
    tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP),
) -> None:
    """Remove a webhook and its pending deliveries."""
    h = backend().remove_webhook(_tenant(tenant), webhook_id)
    console.print(f"webhook {h.id} ({h.url}) removed")


@app.command("test")
@friendly
def test(
    webhook_id: str = typer.Argument(...),
    tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP),
) -> None:
    """Send a signed webhook.test event now; exit 1 when the receiver did not answer 2xx."""
    d = backend().test_webhook(_tenant(tenant), webhook_id)
    last = d.attempts[-1] if d.attempts else None
    answer = (
        f"HTTP {last.status_code}" if last and last.status_code else (last.error if last else "no attempt")
    )
    if d.status == "delivered":
        console.print(f"[green]delivered[/] {d.id}: {answer} in {last.duration_ms:.0f} ms" if last else d.id)
        return
    console.print(f"[bold red]not delivered[/] {d.id}: {answer}")
    raise typer.Exit(1)
