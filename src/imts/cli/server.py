"""`imts server`: the REST API (``/api/v1``) on uvicorn, over the workspace's database."""

from __future__ import annotations

import ipaddress

import typer

from imts.cli.common import console, err_console, friendly, machine_context


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@friendly
def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    tls: bool = typer.Option(
        False,
        "--behind-tls",
        help="A TLS proxy fronts the server: mark session cookies Secure even on loopback.",
    ),
    helpers: int | None = typer.Option(
        None,
        "--offload",
        min=0,
        help="Helper processes for requests' heavy work, such as an upload's import (default "
        "IMTS_OFFLOAD_PROCESSES: half the cores, 1 to 4; 0: in the server's process).",
    ),
    init_admin: bool = typer.Option(
        False,
        "--init-admin",
        help="When no administrator exists yet, create 'admin' with a generated password printed this "
        "once (`make demo` starts the server so).",
    ),
) -> None:
    """Serve the REST API: SQLite in the workspace by default, PostgreSQL by IMTS_DATABASE_URL.

    Refuses to start before `imts admin init` created the first administrator. Session cookies are
    Secure (sent only over https) unless the server listens on loopback over plain http.
    """
    import uvicorn

    from imts.api.app import create_app
    from imts.services import identity
    from imts.services.doctor import log_sandbox_state

    ctx = machine_context()  # the server serves this machine's workspace, whatever IMTS_SERVER says
    if init_admin and not identity.has_admin(ctx):
        import secrets

        from imts.store.context import platform_context

        password = secrets.token_urlsafe(15)
        identity.init_admin(platform_context(ctx.ws, "local"), "admin", password)
        console.print("created the first administrator [bold]admin[/]; its password, shown only now:")
        console.print(password, markup=False, highlight=False)
    if not identity.has_admin(ctx):
        err_console.print("[bold red]error:[/] no administrator yet: run `imts admin init` first")
        raise typer.Exit(2)
    secure = tls or not _loopback(host)
    app = create_app(ctx.settings, secure_cookies=secure)
    console.print(
        f"IMTS API on http://{host}:{port}/api/v1 (schema: http://{host}:{port}/docs)\n"
        f"sign in: POST /api/v1/auth/login with your user name and password, or create an API key "
        f"(imts keys create --user NAME) and use it: "
        f"IMTS_SERVER=http://{host}:{port} IMTS_API_KEY=... imts tenants list",
        highlight=False,
    )
    if not secure:
        console.print("[dim]plain http on loopback: session cookies are not marked Secure[/]")
    # Tenants' data steers the code the judges and verifiers run: say at start-up how it is confined.
    sandbox = log_sandbox_state(ctx.settings)
    style = {"bubblewrap": "dim", "unconfined": "bold yellow"}.get(sandbox.mode, "bold red")
    verdict = {
        "bubblewrap": "untrusted code runs confined",
        "unconfined": "untrusted code runs WITHOUT confinement (IMTS_SANDBOX_UNCONFINED=1)",
    }.get(sandbox.mode, "untrusted code will be refused (no confinement here)")
    console.print(f"[{style}]sandbox: {verdict}: {sandbox.detail}[/]")
    from imts.jobs import launcher
    from imts.services import kinds, offload

    # The job workers' launcher (the local executor forks them from it) imports while the helpers start.
    forks = kinds.start_launcher(ctx.settings)
    offload.start(ctx.settings.offload_processes if helpers is None else helpers, ctx.settings.offload_nice)
    # What start-up built (modules, the app, the schema: ~275,000 objects) never becomes garbage: kept
    # out of the collector's view, a full collection scans only what requests allocate instead of
    # pausing every request for ~150 ms (benchmarks/RESULTS.md, 2026-11-28).
    import gc

    gc.collect()
    gc.freeze()
    if forks is not None:
        try:
            forks.wait_ready()
        except launcher.LaunchError as exc:  # workers then start directly, as from the CLI
            err_console.print(f"[bold yellow]warning:[/] {exc}; job workers will start directly")
            launcher.stop()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        offload.stop()
        launcher.stop()
        identity.flush_key_uses(ctx.ws)
