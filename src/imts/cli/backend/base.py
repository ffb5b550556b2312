"""What every part of ``LocalBackend`` stands on: the contexts it acts in (the local user acts as
platform administrator) and a kind of work run here or as a job followed to its end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from pydantic import BaseModel

    from imts.cli.backend.protocol import OnQueued, OnRequeued
    from imts.jobs.pool import Request


class LocalScopes:
    """The contexts the parts of ``LocalBackend`` act in, on this machine's database."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx  # the command's local context (its settings name the default tenant and project)

    def _platform(self) -> Any:
        from imts.store.context import platform_context

        return platform_context(self.ctx.ws, "local")

    def _tenant(self, tenant: str) -> Any:
        from imts.store.context import tenant_context

        return tenant_context(self.ctx.ws, tenant, "local", "admin", platform_admin=True)

    def _project(self, tenant: str, project: str) -> Any:
        from imts.store.context import open_context

        if (tenant, project) == (self.ctx.tenant, self.ctx.project):
            return self.ctx
        return open_context(self.ctx.ws, tenant, project, "local", "admin", platform_admin=True)

    def close(self) -> None:
        pass

    def _submission(
        self, ctx: Any, kind: str, spec: dict[str, Any] | BaseModel, inline: bool, name: str, priority: str,
        preemptible: bool | None, workers: int, request: Request | None, retries: int,
    ) -> Any:  # fmt: skip
        from imts.jobs import service

        if request is None:  # a whole node's CPUs shared out between the workers, as inline would use
            request = service.Request(cpus=1 if inline else service.node_cpus(ctx, workers))
        return service.Submission(
            kind, spec, name=name, priority_class=priority, preemptible=preemptible, workers=workers,
            request=request, max_retries=retries,
        )  # fmt: skip

    def execute(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *,
        result: type[Any] | None = None, inline: bool = False, name: str = "", priority: str = "normal",
        preemptible: bool | None = None, workers: int = 1, request: Request | None = None,
        retries: int = 1, progress: Any = None, on_queued: OnQueued | None = None,
        on_requeued: OnRequeued | None = None,
    ) -> Any:  # fmt: skip
        """The kind's typed result, run here (``inline``) or as a job followed to its end."""
        from imts.jobs import service

        ctx = self._project(tenant, project)
        sub = self._submission(
            ctx, kind, spec, inline, name, priority, preemptible, workers, request, retries
        )
        return service.execute(
            ctx, sub, inline=inline, progress=progress, on_queued=on_queued, on_requeued=on_requeued
        )
