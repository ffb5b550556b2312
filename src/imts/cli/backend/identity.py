"""The local backend's users, tenants, projects, members, API keys, audit log and webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from imts.cli.backend.base import LocalScopes

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from imts.services.audit import AuditEntryView, AuditVerdict
    from imts.services.identity import CreatedKey, KeyView, MemberView, UserView
    from imts.services.tenancy import ProjectView, TenantView
    from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView


class LocalIdentity(LocalScopes):
    """Identity, audit and webhooks on this machine's database."""

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
