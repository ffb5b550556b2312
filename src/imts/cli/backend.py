"""The one seam between a CLI command and where it acts: this machine's database (``LocalBackend``,
the services called directly, the local user acting as platform administrator) or an IMTS server
(``imts.api.client.ApiClient`` with ``--server`` / ``IMTS_SERVER`` and ``IMTS_API_KEY``). Both have
the same methods and return the same typed models; ``common.backend()`` picks one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from imts.data.versions import VersionInfo
    from imts.jobs.views import JobEventView, JobView
    from imts.services.audit import AuditEntryView, AuditVerdict
    from imts.services.identity import CreatedKey, KeyView, MemberView, UserView
    from imts.services.tenancy import ProjectView, TenantView
    from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView


class Backend(Protocol):
    """What the identity, audit, jobs, data and webhooks commands need."""

    def list_users(self) -> list[UserView]: ...
    def create_user(self, username: str, password: str, platform_admin: bool = False) -> UserView: ...
    def disable_user(self, username: str) -> UserView: ...
    def list_tenants(self) -> list[TenantView]: ...
    def create_tenant(self, name: str) -> TenantView: ...
    def list_projects(self, tenant: str) -> list[ProjectView]: ...
    def create_project(self, tenant: str, name: str) -> ProjectView: ...
    def list_members(self, tenant: str) -> list[MemberView]: ...
    def add_member(self, tenant: str, username: str, role: str) -> MemberView: ...
    def remove_member(self, tenant: str, username: str) -> MemberView: ...
    def list_keys(self, user: str = "*") -> list[KeyView]: ...
    def create_key(
        self, user: str | None, name: str, tenant: str | None, project: str | None,
        ceiling: str | None, days: float | None,
    ) -> CreatedKey: ...  # fmt: skip
    def revoke_key(self, key_id: str) -> KeyView: ...
    def audit_query(
        self, since: datetime | None, actor: str | None, action: str | None, limit: int = 100
    ) -> list[AuditEntryView]: ...
    def audit_export(
        self, since: datetime | None, actor: str | None, action: str | None
    ) -> Iterator[str]: ...
    def audit_verify(self) -> AuditVerdict: ...
    def list_jobs(self, tenant: str, project: str, state: str | None = None) -> list[JobView]: ...
    def show_job(self, tenant: str, project: str, job_id: str) -> tuple[JobView, list[JobEventView]]: ...
    def job_action(self, tenant: str, project: str, job_id: str, action: str) -> JobView: ...
    def list_datasets(self, tenant: str, project: str, dataset: str | None = None) -> list[VersionInfo]: ...
    def list_webhooks(self, tenant: str) -> list[WebhookView]: ...
    def add_webhook(
        self, tenant: str, url: str, events: list[str], description: str = ""
    ) -> CreatedWebhook: ...
    def remove_webhook(self, tenant: str, webhook_id: str) -> WebhookView: ...
    def test_webhook(self, tenant: str, webhook_id: str) -> DeliveryView: ...
    def close(self) -> None: ...


class LocalBackend:
    """The services on this machine's database; the local user acts as platform administrator."""

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

    def list_users(self) -> list[UserView]:
        from imts.services import identity

        return identity.list_users(self._platform())

    def create_user(self, username: str, password: str, platform_admin: bool = False) -> UserView:
        from imts.services import identity

        return identity.create_user(self._platform(), username, password, platform_admin)

    def disable_user(self, username: str) -> UserView:
        from imts.services import identity

        return identity.disable_user(self._platform(), username)

    def list_tenants(self) -> list[TenantView]:
        from imts.services import tenancy

        return tenancy.list_tenants(self._platform())

    def create_tenant(self, name: str) -> TenantView:
        from imts.services import tenancy

        return tenancy.create_tenant(self._platform(), name)

    def list_projects(self, tenant: str) -> list[ProjectView]:
        from imts.services import tenancy

        return tenancy.list_projects(self._tenant(tenant))

    def create_project(self, tenant: str, name: str) -> ProjectView:
        from imts.services import tenancy

        return tenancy.create_project(self._tenant(tenant), name)

    def list_members(self, tenant: str) -> list[MemberView]:
        from imts.services import identity

        return identity.list_members(self._tenant(tenant))

    def add_member(self, tenant: str, username: str, role: str) -> MemberView:
        from imts.services import identity

        return identity.add_member(self._tenant(tenant), username, role)

    def remove_member(self, tenant: str, username: str) -> MemberView:
        from imts.services import identity

        return identity.remove_member(self._tenant(tenant), username)

    def list_keys(self, user: str = "*") -> list[KeyView]:
        from imts.services import identity

        return identity.list_keys(self._platform(), user)

    def create_key(
        self, user: str | None, name: str, tenant: str | None, project: str | None,
        ceiling: str | None, days: float | None,
    ) -> CreatedKey:  # fmt: skip
        from imts.core.errors import InputError
        from imts.services import identity

        if not user:
            raise InputError(
                "name the key's owner with --user (the local user is no user of the server)", field="user"
            )
        return identity.create_key(self._platform(), name, tenant, project, ceiling, days, username=user)

    def revoke_key(self, key_id: str) -> KeyView:
        from imts.services import identity

        return identity.revoke_key(self._platform(), key_id)

    def audit_query(
        self, since: datetime | None, actor: str | None, action: str | None, limit: int = 100
    ) -> list[AuditEntryView]:
        from imts.services import audit

        return audit.query(self._platform(), since, actor, action, limit=limit)

    def audit_export(self, since: datetime | None, actor: str | None, action: str | None) -> Iterator[str]:
        from imts.services import audit

        return iter(audit.export_jsonl(self._platform(), since, actor, action))

    def audit_verify(self) -> AuditVerdict:
        from imts.services import audit

        return audit.verify(self._platform())

    def list_jobs(self, tenant: str, project: str, state: str | None = None) -> list[JobView]:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.settle(ctx, wait=True)  # a CLI command reads once: current state, not throttled
        return service.list_jobs(ctx, state)

    def show_job(self, tenant: str, project: str, job_id: str) -> tuple[JobView, list[JobEventView]]:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.settle(ctx, wait=True)
        return service.get(ctx, job_id), service.events(ctx, job_id)

    def job_action(self, tenant: str, project: str, job_id: str, action: str) -> JobView:
        from imts.jobs import service

        ctx = self._project(tenant, project)
        service.request(ctx, job_id, action)
        return service.get(ctx, job_id)

    def list_datasets(self, tenant: str, project: str, dataset: str | None = None) -> list[VersionInfo]:
        from imts.data import service

        return service.list_versions(self._project(tenant, project), dataset)

    def list_webhooks(self, tenant: str) -> list[WebhookView]:
        from imts.services import webhooks

        return webhooks.list_webhooks(self._tenant(tenant))

    def add_webhook(self, tenant: str, url: str, events: list[str], description: str = "") -> CreatedWebhook:
        from imts.services import webhooks

        return webhooks.add(self._tenant(tenant), url, events, description)

    def remove_webhook(self, tenant: str, webhook_id: str) -> WebhookView:
        from imts.services import webhooks

        return webhooks.remove(self._tenant(tenant), webhook_id)

    def test_webhook(self, tenant: str, webhook_id: str) -> DeliveryView:
        from imts.services import webhooks

        return webhooks.test(self._tenant(tenant), webhook_id)
