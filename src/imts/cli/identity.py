"""`imts admin | users | members | keys | tenants | projects | audit`: the server's identity and audit.

On the machine that holds the database the local user acts as platform administrator; with
``--server URL`` (or IMTS_SERVER) and IMTS_API_KEY the same verbs act on that server through its API,
with the key's rights (``cli/backend/``). ``imts admin init`` is local only."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from imts.cli.common import backend, console, friendly, machine_context, print_json, scope
from imts.core.errors import InputError

admin_app = typer.Typer(help="Set up the server's first platform administrator.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the server (argon2-hashed passwords).", no_args_is_help=True)
members_app = typer.Typer(help="A tenant's members and their roles.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys (the secret is printed once, stored only as a hash).", no_args_is_help=True
)
tenants_app = typer.Typer(help="Tenants.", no_args_is_help=True)
projects_app = typer.Typer(help="A tenant's projects.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: list, export, verify the hash chain.", no_args_is_help=True)

TENANT_HELP = "Tenant (default: the global --tenant, IMTS_TENANT, else 'default')."


def register(app: typer.Typer) -> None:
    subs = {"admin": admin_app, "users": users_app, "members": members_app, "keys": keys_app,
            "tenants": tenants_app, "projects": projects_app, "audit": audit_app}  # fmt: skip
    for name, sub in subs.items():
        app.add_typer(sub, name=name)


def _platform() -> Any:
    from imts.store.context import platform_context

    return platform_context(machine_context().ws, "local")  # admin init: this machine's database


def _tenant(name: str | None) -> str:
    return name or scope()[0]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise InputError("an empty password", field="password")
    return password


def _table(title: str, cols: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


@admin_app.command("init")
@friendly
def admin_init(
    username: str = typer.Option("admin", "--username", help="The administrator's user name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Create the first platform administrator (asks for its password; there is no default one)."""
    from imts.services import identity

    user = identity.init_admin(_platform(), username, _password(password_stdin))
    console.print(f"platform administrator [bold]{user.username}[/] created; start the server: imts server")


@users_app.command("add")
@friendly
def users_add(
    username: str = typer.Argument(..., help="User name (a-z 0-9 . _ -)."),
    platform_admin: bool = typer.Option(False, "--platform-admin", help="Administer the whole installation."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Add a user (give it a role with `imts members add`)."""
    user = backend().create_user(username, _password(password_stdin), platform_admin)
    console.print(f"user [bold]{user.username}[/] added")


@users_app.command("list")
@friendly
def users_list() -> None:
    """Every user."""
    rows = [[u.username, u.is_platform_admin, u.disabled, u.created_at] for u in backend().list_users()]
    _table("users", ["user", "platform admin", "disabled", "created"], rows)


@users_app.command("disable")
@friendly
def users_disable(username: str = typer.Argument(...)) -> None:
    """Disable a user: its sessions end and its keys stop working."""
    backend().disable_user(username)
    console.print(f"user [bold]{username}[/] disabled")


@members_app.command("add")
@friendly
def members_add(
    username: str = typer.Argument(...),
    role: str = typer.Option(..., "--role", help="admin | researcher | developer | viewer"),
    tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP),
) -> None:
    """Give a user a role in a tenant (or change it)."""
    m = backend().add_member(_tenant(tenant), username, role)
    console.print(f"[bold]{m.username}[/] is {m.role} in tenant {m.tenant}")


@members_app.command("list")
@friendly
def members_list(tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP)) -> None:
    """A tenant's members and their roles."""
    ms = backend().list_members(_tenant(tenant))
    _table("members", ["user", "role"], [[m.username, m.role] for m in ms])


@members_app.command("remove")
@friendly
def members_remove(
    username: str = typer.Argument(...), tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP)
) -> None:
    """Remove a user from a tenant."""
    m = backend().remove_member(_tenant(tenant), username)
    console.print(f"[bold]{m.username}[/] removed from tenant {m.tenant}")


@keys_app.command("create")
@friendly
def keys_create(
    user: str | None = typer.Option(
        None, "--user", help="The key's owner (required locally; over --server: the caller)."
    ),
    name: str = typer.Option("", "--name", help="A label."),
    tenant: str | None = typer.Option(None, "--scope-tenant", help="Limit the key to this tenant."),
    project: str | None = typer.Option(None, "--scope-project", help="...and to this project of it."),
    ceiling: str | None = typer.Option(None, "--role-ceiling", help="Highest role the key acts with."),
    days: float = typer.Option(90, "--days", help="Lifetime in days (0: no expiry)."),
) -> None:
    """Create an API key; its secret is printed this once."""
    k = backend().create_key(user, name, tenant, project, ceiling, days or None)
    console.print(f"key {k.id} ({k.prefix}…) for {k.username}; the secret, shown only now:")
    sys.stdout.write(k.secret + "\n")


@keys_app.command("list")
@friendly
def keys_list(
    user: str = typer.Option(
        "*", "--user", help="Whose keys (default: everyone's; over --server: the caller's)."
    ),
) -> None:
    """API keys (prefixes only)."""
    ks = backend().list_keys(user)
    rows = [[k.id, k.prefix, k.username, k.tenant or "*", k.project or "*", k.role_ceiling, k.expires_at,
             k.revoked_at, k.last_used_at] for k in ks]  # fmt: skip
    _table(
        "keys",
        ["id", "prefix", "user", "tenant", "project", "ceiling", "expires", "revoked", "last used"],
        rows,
    )


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: str = typer.Argument(...)) -> None:
    """Revoke a key: refused from the next request on."""
    k = backend().revoke_key(key_id)
    console.print(f"key {k.id} ({k.prefix}…) revoked")


@tenants_app.command("create")
@friendly
def tenants_create(name: str = typer.Argument(...)) -> None:
    """Create a tenant."""
    console.print(f"tenant [bold]{backend().create_tenant(name).name}[/] created")


@tenants_app.command("list")
@friendly
def tenants_list() -> None:
    """Every tenant (over --server: the caller's)."""
    _table("tenants", ["tenant", "created"], [[t.name, t.created_at] for t in backend().list_tenants()])


@projects_app.command("create")
@friendly
def projects_create(
    name: str = typer.Argument(...), tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP)
) -> None:
    """Create a project in a tenant."""
    p = backend().create_project(_tenant(tenant), name)
    console.print(f"project [bold]{p.name}[/] created in tenant {p.tenant}")


@projects_app.command("list")
@friendly
def projects_list(tenant: str | None = typer.Option(None, "--tenant", help=TENANT_HELP)) -> None:
    """A tenant's projects."""
    ps = backend().list_projects(_tenant(tenant))
    _table("projects", ["project", "created"], [[p.name, p.created_at] for p in ps])


SINCE_HELP = "Only entries at or after this time (ISO 8601, e.g. 2026-11-27T09:00)."


@audit_app.command("list")
@friendly
def audit_list(
    since: datetime | None = typer.Option(None, "--since", help=SINCE_HELP),
    actor: str | None = typer.Option(None, "--actor", help="Who acted."),
    action: str | None = typer.Option(None, "--action", help="e.g. key.create, or key.* for a prefix."),
    limit: int = typer.Option(100, "--limit"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Audit entries of the whole installation, oldest first."""
    entries = backend().audit_query(since, actor, action, limit)
    if as_json:
        print_json([e.model_dump() for e in entries])
        return
    rows = [[e.seq, e.at, e.actor, e.tenant or "-", e.action, f"{e.object_type}:{e.object_id}", e.client]
            for e in entries]  # fmt: skip
    _table("audit log", ["#", "at", "actor", "tenant", "action", "object", "client"], rows)


@audit_app.command("export")
@friendly
def audit_export(
    jsonl: bool = typer.Option(True, "--jsonl", help="JSON lines (the only format)."),
    since: datetime | None = typer.Option(None, "--since", help=SINCE_HELP),
    actor: str | None = typer.Option(None, "--actor"),
    action: str | None = typer.Option(None, "--action"),
) -> None:
    """Every matching entry as JSON lines on stdout."""
    for line in backend().audit_export(since, actor, action):
        sys.stdout.write(line)


@audit_app.command("verify")
@friendly
def audit_verify() -> None:
    """Check the hash chain; exit 1 when an entry was modified or deleted."""
    v = backend().audit_verify()
    if v.ok:
        console.print(f"[green]ok[/]: {v.entries} entries, chain intact")
        return
    console.print(f"[bold red]broken[/] at entry {v.broken_seq}: {v.problem}")
    raise typer.Exit(1)
