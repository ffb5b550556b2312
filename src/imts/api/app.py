"""The REST API app: ``create_app(settings)`` mounts every resource router under ``/api/v1``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from imts import __version__
from imts.api import errors, metrics
from imts.api.deps import permission_of
from imts.api.routes import (
    analyses,
    audit,
    auth,
    datasets,
    deployments,
    evals,
    health,
    jobs,
    keys,
    loops,
    me,
    members,
    models,
    optimise,
    pool,
    runs,
    specs,
    tenants,
    uploads,
    users,
    webhooks,
)
from imts.core.settings import Settings
from imts.services.startup import start

PREFIX = "/api/v1"
CONSOLE = Path(__file__).parent / "console"  # the web console: static files, served at / (docs/console.md)
# Every resource's router; a route without a declared permission makes create_app refuse.
ROUTERS = [health.router, auth.router, me.router, users.router, tenants.router, members.router,
           keys.router, audit.router, datasets.router, analyses.router, uploads.router, jobs.router,
           runs.router, evals.router, models.router, deployments.router, pool.router, webhooks.router,
           specs.router, optimise.router, loops.router]  # fmt: skip


def create_app(settings: Settings, secure_cookies: bool = True) -> FastAPI:
    """The API over the workspace of ``settings``.

    Args:
        settings: the database (SQLite by default, PostgreSQL by ``IMTS_DATABASE_URL``) and workspace.
        secure_cookies: mark the session cookie ``Secure`` (only plain http on loopback turns it off).

    Raises:
        RuntimeError: a route declares no permission (deny by default: such an app is never built).
    """
    app = FastAPI(
        title="IMTS platform API",
        version=__version__,
        description="Tenants, projects, users, API keys, datasets and uploads, jobs, runs, evaluations "
        "and reports, models, the pool and quotas, webhooks and the audit log; every route names the "
        "permission it needs in `x-permission` (docs/security.md).",
    )
    app.state.ws = start(settings)
    app.state.secure_cookies = secure_cookies
    errors.install(app)
    api = APIRouter(prefix=PREFIX, responses=errors.ERROR_RESPONSES)
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                perm = permission_of(route.dependant)
                if perm is None:
                    raise RuntimeError(f"route {sorted(route.methods)} {route.path} declares no permission")
                route.openapi_extra = {**(route.openapi_extra or {}), "x-permission": perm}
        api.include_router(router)
    app.include_router(api)
    _errors_as_json(app)
    metrics.install(app)  # rate and size limits, latency, /metrics, the webhook delivery worker
    # Last, so every route above wins; every script, style and chart library is served from here.
    app.mount("/", StaticFiles(directory=CONSOLE, html=True), name="console")
    return app


def _errors_as_json(app: FastAPI) -> None:
    """Document error responses as JSON on every route: FastAPI files them under the route's own media
    type (text/plain for a log, an event stream), but an error body is always JSON."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for methods in schema.get("paths", {}).values():
                for op in methods.values():
                    for status, response in op.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[:1] in "45" and content and "application/json" not in content:
                            response["content"] = {"application/json": next(iter(content.values()))}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
