"""The typed HTTP client of the REST API, for the remote CLI (``imts --server URL``) and scripts.

    with ApiClient("http://127.0.0.1:8000", key) as api:
        for job in api.list_jobs("acme", "nlp"):
            print(job.id, job.state)

``ApiClient`` speaks the same method names as the CLI's local backend (``cli/backend.py``) and returns
the same typed models the services return, so a command renders either. A refused request raises
``ApiError`` (an ``ImtsError``: the CLI prints its message, e.g. the file and line of a bad row).

Chunked uploads (``upload_file``) resume a broken connection: the client asks the server which chunks
it holds and sends only the missing ones; an upload interrupted for good is resumed by passing its id
(``upload_id=``) again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from imts.core.errors import ImtsError
from imts.data.versions import VersionInfo
from imts.jobs.views import JobEventView, JobView
from imts.services.audit import AuditEntryView, AuditVerdict
from imts.services.identity import CreatedKey, KeyView, MemberView, MeView, UserView
from imts.services.tenancy import ProjectView, TenantView
from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView

API = "/api/v1"
CHUNK = 8 << 20
M = TypeVar("M")


class ApiError(ImtsError):
    """The server refused a request; ``message`` is its error body's message (file:line for bad rows)."""

    def __init__(self, status: int, message: str, kind: str = "") -> None:
        self.status, self.message, self.kind = status, message, kind
        super().__init__(f"{status} {kind}: {message}" if kind else f"{status}: {message}")


def connect(server: str, key: str, timeout: float = 60.0) -> httpx.Client:
    """An HTTP client for ``server`` authenticating with the API key ``key``."""
    return httpx.Client(
        base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


def _checked(r: httpx.Response) -> Any:
    if r.is_success:
        return r.json()
    try:
        err = r.json()["error"]
        raise ApiError(r.status_code, err["message"], err["type"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(r.status_code, r.text[:500]) from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def start_upload(http: httpx.Client, tenant: str, project: str, path: Path, chunk_size: int = CHUNK) -> str:
    """Declare ``path`` to the server; returns the upload's id."""
    decl = {
        "file_name": path.name,
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "chunk_size": chunk_size,
    }
    return str(_checked(http.post(f"{API}/tenants/{tenant}/projects/{project}/uploads", json=decl))["id"])


def upload_file(
    http: httpx.Client,
    tenant: str,
    project: str,
    path: Path,
    *,
    upload_id: str | None = None,
    chunk_size: int = CHUNK,
    retries: int = 5,
    on_chunk: Callable[[int, int], None] | None = None,
    complete_timeout: float | None = None,
    **import_options: Any,
) -> dict[str, Any]:
    """Upload ``path`` in chunks and import it as a dataset version; returns the version (JSON).

    Args:
        upload_id: resume this upload instead of starting one (only the missing chunks are sent).
        retries: how many times a broken connection is retried (after 1, 2, 4 ... seconds).
        on_chunk: called with (chunk number, chunk count) after each chunk the server acknowledged.
        complete_timeout: seconds to wait for the import (None: no limit; a large file takes minutes).
        import_options: ``name``, ``map``, ``format``, ``type``, ``text_unit``, ``on_error``.

    Raises:
        ApiError: the server refused (bad rows: the message names the file and line).
    """
    base = f"{API}/tenants/{tenant}/projects/{project}/uploads"
    upload_id = upload_id or start_upload(http, tenant, project, path, chunk_size)
    for attempt in range(retries + 1):
        try:
            state = _checked(http.get(f"{base}/{upload_id}"))
            size = state["chunk_size"]
            with path.open("rb") as f:
                for n in state["missing"]:
                    f.seek(n * size)
                    data = f.read(size)
                    headers = {"X-Chunk-SHA256": hashlib.sha256(data).hexdigest(),
                               "Content-Type": "application/octet-stream"}  # fmt: skip
                    _checked(http.put(f"{base}/{upload_id}/chunks/{n}", content=data, headers=headers))
                    if on_chunk:
                        on_chunk(n, state["chunks"])
            break
        except httpx.TransportError:
            if attempt == retries:
                raise
            time.sleep(2**attempt)
    r = http.post(f"{base}/{upload_id}/complete", json=import_options, timeout=complete_timeout)
    return dict(_checked(r))


def _params(**values: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items() if v is not None}


class ApiClient:
    """The API's resources as typed methods over one ``httpx.Client`` (see the module's docstring)."""

    def __init__(self, server: str, key: str, timeout: float = 60.0) -> None:
        self.server = server.rstrip("/")
        self.http = connect(server, key, timeout)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, model: Any, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, API + path, **kwargs)
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        return TypeAdapter(model).validate_python(_checked(r))

    def _get(self, model: type[M] | Any, path: str, **params: Any) -> Any:
        return self._call(model, "GET", path, params=_params(**params))

    # --- the caller, users, tenants, projects, members ---

    def me(self) -> MeView:
        return self._get(MeView, "/me")  # type: ignore[no-any-return]

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

    # --- API keys (the caller's own: the API creates and lists keys of the signed-in user) ---

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

    # --- the audit log ---

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

    # --- jobs and datasets of a project ---

    def list_jobs(self, tenant: str, project: str, state: str | None = None) -> list[JobView]:
        return self._get(list[JobView], f"/tenants/{tenant}/projects/{project}/jobs", state=state)  # type: ignore[no-any-return]

    def show_job(self, tenant: str, project: str, job_id: str) -> tuple[JobView, list[JobEventView]]:
        detail = self._get(dict[str, Any], f"/tenants/{tenant}/projects/{project}/jobs/{job_id}")
        job = JobView.model_validate(detail["job"])
        return job, TypeAdapter(list[JobEventView]).validate_python(detail["events"])

    def job_action(self, tenant: str, project: str, job_id: str, action: str) -> JobView:
        path = f"/tenants/{tenant}/projects/{project}/jobs/{job_id}/{action}"
        return self._call(JobView, "POST", path)  # type: ignore[no-any-return]

    def list_datasets(self, tenant: str, project: str, dataset: str | None = None) -> list[VersionInfo]:
        path = f"/tenants/{tenant}/projects/{project}/datasets"
        return self._get(list[VersionInfo], path, dataset=dataset)  # type: ignore[no-any-return]

    # --- webhooks of a tenant ---

    def list_webhooks(self, tenant: str) -> list[WebhookView]:
        return self._get(list[WebhookView], f"/tenants/{tenant}/webhooks")  # type: ignore[no-any-return]

    def add_webhook(self, tenant: str, url: str, events: list[str], description: str = "") -> CreatedWebhook:
        body = {"url": url, "events": events, "description": description}
        return self._call(CreatedWebhook, "POST", f"/tenants/{tenant}/webhooks", json=body)  # type: ignore[no-any-return]

    def remove_webhook(self, tenant: str, webhook_id: str) -> WebhookView:
        return self._call(WebhookView, "DELETE", f"/tenants/{tenant}/webhooks/{webhook_id}")  # type: ignore[no-any-return]

    def test_webhook(self, tenant: str, webhook_id: str) -> DeliveryView:
        return self._call(DeliveryView, "POST", f"/tenants/{tenant}/webhooks/{webhook_id}/test")  # type: ignore[no-any-return]


__all__ = ["ApiClient", "ApiError", "connect"]
