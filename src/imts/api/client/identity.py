"""The API client's users, tenants, projects, members, API keys, audit log and webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from imts.api.client.base import ApiBase
from imts.api.client.transport import API, ApiError, _checked, _params
from imts.services.audit import AuditEntryView, AuditVerdict
from imts.services.identity import CreatedKey, KeyView, MemberView, UserView
from imts.services.tenancy import ProjectView, TenantView
from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView


class ApiIdentity(ApiBase):
    """Identity, audit and webhooks on the server."""

    def list_users(self) -> list[UserView]:
        return self._get(list[UserView], "/users")  # type: ignore[no-any-return]

    def create_user(self, username: str, password: str, platform_admin: bool = False) -> UserView:
        body = {"username": username, "password": password, "platform_admin": platform_admin}
        return self._call(UserView, "POST", "/users", json=body)  # type: ignore[no-any-return]

    def disable_user(self, username: str) -> UserView:
        return self._call(UserView, "POST", f"/users/{username}/disable")  # type: ignore[no-any-return]

    def list_tenants(self) -> list[TenantView]:
        return self._get(list[TenantView], "/tenants")  # type: ignore[no-any-return]

    def create_tenant(self, name: str) -> TenantView:
        return self._call(TenantView, "POST", "/tenants", json={"name": name})  # type: ignore[no-any-return]

    def list_projects(self, tenant: str) -> list[ProjectView]:
        return self._get(list[ProjectView], f"/tenants/{tenant}/projects")  # type: ignore[no-any-return]

    def create_project(self, tenant: str, name: str) -> ProjectView:
        return self._call(ProjectView, "POST", f"/tenants/{tenant}/projects", json={"name": name})  # type: ignore[no-any-return]

    def list_members(self, tenant: str) -> list[MemberView]:
        return self._get(list[MemberView], f"/tenants/{tenant}/members")  # type: ignore[no-any-return]

    def add_member(self, tenant: str, username: str, role: str) -> MemberView:
        path = f"/tenants/{tenant}/members/{username}"
        return self._call(MemberView, "PUT", path, json={"role": role})  # type: ignore[no-any-return]

    def remove_member(self, tenant: str, username: str) -> MemberView:
        return self._call(MemberView, "DELETE", f"/tenants/{tenant}/members/{username}")  # type: ignore[no-any-return]

    def list_keys(self, user: str = "*") -> list[KeyView]:
        return self._get(list[KeyView], "/keys")  # type: ignore[no-any-return]

    def create_key(
        self, user: str | None, name: str, tenant: str | None, project: str | None,
        ceiling: str | None, days: float | None,
    ) -> CreatedKey:  # fmt: skip
        if user is not None and user != self.me().user.username:
            raise ApiError(
                422, "over the API a key is created for the caller itself (omit --user)", "invalid_input"
            )
        body = {
            "name": name,
            "tenant": tenant,
            "project": project,
            "role_ceiling": ceiling,
            "expires_days": days,
        }
        return self._call(CreatedKey, "POST", "/keys", json=body)  # type: ignore[no-any-return]

    def revoke_key(self, key_id: str) -> KeyView:
        return self._call(KeyView, "DELETE", f"/keys/{key_id}")  # type: ignore[no-any-return]

    def audit_query(
        self, since: datetime | None, actor: str | None, action: str | None, limit: int = 100
    ) -> list[AuditEntryView]:
        return self._get(list[AuditEntryView], "/audit", since=since, actor=actor, action=action, limit=limit)  # type: ignore[no-any-return]

    def audit_export(self, since: datetime | None, actor: str | None, action: str | None) -> Iterator[str]:
        params = _params(since=since, actor=actor, action=action)
        with self.http.stream("GET", f"{API}/audit/export", params=params) as r:
            if not r.is_success:
                r.read()
                _checked(r)
            for line in r.iter_lines():
                if line:
                    yield line + "\n"

    def audit_verify(self) -> AuditVerdict:
        return self._get(AuditVerdict, "/audit/verify")  # type: ignore[no-any-return]

    def list_webhooks(self, tenant: str) -> list[WebhookView]:
        return self._get(list[WebhookView], f"/tenants/{tenant}/webhooks")  # type: ignore[no-any-return]

    def add_webhook(self, tenant: str, url: str, events: list[str], description: str = "") -> CreatedWebhook:
        body = {"url": url, "events": events, "description": description}
        return self._call(CreatedWebhook, "POST", f"/tenants/{tenant}/webhooks", json=body)  # type: ignore[no-any-return]

    def remove_webhook(self, tenant: str, webhook_id: str) -> WebhookView:
        return self._call(WebhookView, "DELETE", f"/tenants/{tenant}/webhooks/{webhook_id}")  # type: ignore[no-any-return]

    def test_webhook(self, tenant: str, webhook_id: str) -> DeliveryView:
        return self._call(DeliveryView, "POST", f"/tenants/{tenant}/webhooks/{webhook_id}/test")  # type: ignore[no-any-return]
