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
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from imts.core.errors import ImtsError, InputError, NotFoundError
from imts.core.progress import NullProgress
from imts.data.jobs import SplitResult
from imts.data.versions import VersionInfo
from imts.data.views import (
    DatasetDiff,
    ExportResult,
    FieldStats,
    Lineage,
    RowsPage,
    SharedVersion,
    VersionDetail,
)
from imts.jobs.pool import Request
from imts.jobs.views import JobEventView, JobLogEvent, JobProgressBar, JobView
from imts.registry.views import (
    AliasProtectionView,
    AliasState,
    AliasView,
    BaseModelView,
    ModelVersionView,
)
from imts.services.audit import AuditEntryView, AuditVerdict
from imts.services.identity import CreatedKey, KeyView, MemberView, MeView, UserView
from imts.services.tenancy import ProjectView, TenantView
from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView
from imts.store.runs import RunComparison, RunEventView, RunRecord, RunView

if TYPE_CHECKING:  # imported where used: a remote command loads only what it needs
    from imts.analysis.pipeline import Analysis, AnalysisOptions
    from imts.analysis.service import AnalysisSummary
    from imts.data.vectors import EmbeddingInfo
    from imts.evals.card import ModelCardView
    from imts.evals.versions import VersionComparison
    from imts.flywheel.service import IterationView, LoopView
    from imts.flywheel.spec import LoopSpec
    from imts.jobs.service import CostSummary
    from imts.optimise.pii.scan import PiiScan
    from imts.optimise.service import ReviewView
    from imts.optimise.spec import FixReport, FixSpec
    from imts.registry.deployments import DeploymentView
    from imts.registry.export import ExportResult as ModelExport
    from imts.services.pool import PoolState, QuotaView

API = "/api/v1"
CHUNK = 8 << 20
FINISHED = ("succeeded", "failed", "cancelled")
REMOTE_SOURCES = ("http://", "https://", "s3://")
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

    # --- datasets ---

    def _project(self, tenant: str, project: str) -> str:
        return f"/tenants/{tenant}/projects/{project}"

    def import_data(
        self, tenant: str, project: str, source: str, name: str | None, *, map_: str | None,
        fmt: str | None, file_type: str | None, text_unit: str, on_error: str, append: bool,
        progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        """A URL the server fetches itself (http, https, s3), or a file of this machine uploaded in
        chunks (a bar per chunk) and imported as ``imts data import`` does on the server."""
        if append:
            raise InputError(
                "--append works only on this machine's workspace: over the API, import the file as a "
                "version of its own (without --append)", field="append",
            )  # fmt: skip
        options = {"name": name, "map": map_, "format": fmt, "type": file_type, "text_unit": text_unit,
                   "on_error": on_error}  # fmt: skip
        if source.lower().startswith(REMOTE_SOURCES):
            path = f"{self._project(tenant, project)}/datasets/imports"
            body = {"source": source, **options}
            return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]
        file = Path(source)
        if not file.is_file():
            raise InputError(f"no file {source} on this machine (a URL must start with http://, "
                             "https:// or s3://)", field="source")  # fmt: skip
        progress = progress or NullProgress()
        size = file.stat().st_size
        with progress.task(f"upload {file.name} ({size / 2**20:.1f} MiB)", -(-size // CHUNK) or None) as bar:
            bar.advance(0)

            def on_chunk(n: int, count: int) -> None:
                bar.advance(1, chunk=f"{n + 1}/{count}")

            try:
                version = upload_file(
                    self.http, tenant, project, file, on_chunk=on_chunk,
                    **{k: v for k, v in options.items() if v is not None},
                )  # fmt: skip
            except httpx.TransportError as exc:
                raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        return VersionInfo.model_validate(version)

    def import_query(
        self, tenant: str, project: str, url: str, sql: str, name: str, *, map_: str | None,
        fmt: str | None, on_error: str, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        """The rows of a query the server runs against a database *server* (no file databases)."""
        body = {"url": url, "sql": sql, "name": name, "map": map_, "format": fmt, "on_error": on_error}
        path = f"{self._project(tenant, project)}/datasets/queries"
        return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]

    def show_dataset(self, tenant: str, project: str, ref: str, rows: int) -> VersionDetail:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}"
        return self._get(VersionDetail, path, rows=rows)  # type: ignore[no-any-return]

    def preview_dataset(
        self, tenant: str, project: str, ref: str, where: str | None, limit: int, page: int
    ) -> RowsPage:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/rows"
        return self._get(RowsPage, path, where=where, limit=limit, page=page)  # type: ignore[no-any-return]

    def dataset_stats(self, tenant: str, project: str, ref: str, where: str | None) -> FieldStats:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/stats"
        return self._get(FieldStats, path, where=where)  # type: ignore[no-any-return]

    def split_dataset(
        self, tenant: str, project: str, ref: str, ratios: tuple[float, float, float], seed: int,
        stratify_by: str | None, ngram: int, near: float | None, into: str | None, progress: Any = None,
    ) -> SplitResult:  # fmt: skip
        body = {"ratios": list(ratios), "seed": seed, "stratify_by": stratify_by, "ngram": ngram,
                "near": near, "into": into}  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/split"
        v: VersionInfo = self._call(VersionInfo, "POST", path, json=body, timeout=None)
        return SplitResult(version=v.ref, version_id=v.id, counts=v.stats.get("split", {}))

    def dedup_dataset(
        self, tenant: str, project: str, ref: str, threshold: float | None, num_perm: int,
        into: str | None, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        body = {"threshold": threshold or 0.7, "exact_only": threshold is None, "num_perm": num_perm,
                "into": into}  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/dedup"
        return self._call(VersionInfo, "POST", path, json=body, timeout=None)  # type: ignore[no-any-return]

    def diff_datasets(self, tenant: str, project: str, a: str, b: str, by: str) -> DatasetDiff:
        path = f"{self._project(tenant, project)}/datasets/refs/{a}/diff/{b}"
        return self._get(DatasetDiff, path, by=by)  # type: ignore[no-any-return]

    def rollback_dataset(self, tenant: str, project: str, dataset: str, to: str) -> VersionInfo:
        path = f"{self._project(tenant, project)}/datasets/{dataset}/rollback"
        return self._call(VersionInfo, "POST", path, json={"to": to})  # type: ignore[no-any-return]

    def dataset_lineage(self, tenant: str, project: str, dataset: str) -> Lineage:
        return self._get(Lineage, f"{self._project(tenant, project)}/datasets/{dataset}/lineage")  # type: ignore[no-any-return]

    def share_dataset(self, tenant: str, project: str, ref: str, with_project: str) -> SharedVersion:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/shares"
        return self._call(SharedVersion, "POST", path, json={"project": with_project})  # type: ignore[no-any-return]

    # --- dataset analyses ---

    def analyze(
        self, tenant: str, project: str, ref: str, intent: str, lang: str | None,
        opts: AnalysisOptions, chat: Any = None, progress: Any = None,
    ) -> Analysis:  # fmt: skip
        """Analyse on the server (in the request; a refused fit check is a 409 with its reason), then
        read the analysis in full."""
        from imts.analysis.service import AnalysisSummary

        if chat is not None:
            raise InputError("over the API the analysis uses the rules backend (leave out --backend)",
                             field="backend")  # fmt: skip
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analyses"
        body = {**opts.model_dump(mode="json"), "intent": intent, "lang": lang}
        done: AnalysisSummary = self._call(AnalysisSummary, "POST", path, json=body, timeout=None)
        return self.get_analysis(tenant, project, ref, done.id)

    def list_analyses(self, tenant: str, project: str, ref: str) -> list[AnalysisSummary]:
        from imts.analysis.service import AnalysisSummary

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analyses"
        return self._get(list[AnalysisSummary], path)  # type: ignore[no-any-return]

    def get_analysis(self, tenant: str, project: str, ref: str, analysis_id: str | None) -> Analysis:
        from imts.analysis.pipeline import Analysis

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analysis"
        return self._get(Analysis, path, id=analysis_id)  # type: ignore[no-any-return]

    def analysis_report(self, tenant: str, project: str, ref: str, fmt: str, analysis_id: str | None) -> str:
        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/analysis/report"
        return self._text(path, format=fmt, id=analysis_id)

    def analysis_location(self, tenant: str, project: str, ref: str, analysis_id: str) -> str:
        return f"on {self.server}: imts data analysis {ref} --id {analysis_id} --format html|md|json"

    # --- runs and models ---

    def list_runs(self, tenant: str, project: str, kind: str | None = None) -> list[RunView]:
        return self._get(list[RunView], f"{self._project(tenant, project)}/runs", kind=kind, limit=1000)  # type: ignore[no-any-return]

    def get_run(self, tenant: str, project: str, run_id: str) -> RunView:
        detail = self._get(dict[str, Any], f"{self._project(tenant, project)}/runs/{run_id}")
        return RunView.model_validate(detail["run"])

    def show_run(self, tenant: str, project: str, run_id: str) -> tuple[RunRecord, list[RunEventView]]:
        base = f"{self._project(tenant, project)}/runs/{run_id}"
        record = self._get(RunRecord, f"{base}/record")
        events = TypeAdapter(list[RunEventView]).validate_python(self._get(dict[str, Any], base)["events"])
        return record, events

    def compare_runs(self, tenant: str, project: str, run_ids: list[str]) -> RunComparison:
        return self._get(RunComparison, f"{self._project(tenant, project)}/runs/compare", run=run_ids)  # type: ignore[no-any-return]

    def list_base_models(self) -> list[BaseModelView]:
        return self._get(list[BaseModelView], "/base-models")  # type: ignore[no-any-return]

    def list_model_versions(self, tenant: str, project: str, archived: bool) -> list[ModelVersionView]:
        path = f"{self._project(tenant, project)}/models"
        return self._get(list[ModelVersionView], path, archived=archived)  # type: ignore[no-any-return]

    def show_model(self, tenant: str, project: str, ref: str) -> ModelVersionView:
        return self._get(ModelVersionView, f"{self._project(tenant, project)}/models/{ref}")  # type: ignore[no-any-return]

    # --- jobs: submit, follow to the end, logs ---

    def _node_cpus(self, tenant: str, workers: int) -> int:
        """CPU slots per worker when ``workers`` share the server pool's largest node out."""
        nodes = self._get(dict[str, Any], f"/tenants/{tenant}/pool")["nodes"]
        return max(1, max((int(n["cpus"]) for n in nodes), default=1) // workers)

    def submit_job(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *, name: str = "",
        priority: str = "normal", preemptible: bool | None = None, workers: int = 1,
        request: Request | None = None, retries: int = 1,
    ) -> str:  # fmt: skip
        """Queue a job on the server (refused at once, with the reason, when it could never run)."""
        request = request or Request(cpus=self._node_cpus(tenant, workers))
        body = {
            "kind": kind,
            "spec": spec.model_dump(mode="json") if isinstance(spec, BaseModel) else spec,
            "name": name, "priority": priority, "preemptible": preemptible, "workers": workers,
            "request": request.model_dump(mode="json"), "retries": retries,
        }  # fmt: skip
        job: JobView = self._call(JobView, "POST", f"{self._project(tenant, project)}/jobs", json=body)
        return job.id

    def follow_job(
        self, tenant: str, project: str, job_id: str, progress: Any = None, poll_s: float = 0.5,
        on_requeued: Callable[[str, str], None] | None = None,
    ) -> JobView:  # fmt: skip
        """Wait until the job has finished, its live progress on ``progress`` (the server moves it on
        as it is looked at when no scheduler daemon runs)."""
        bar = JobProgressBar(progress or NullProgress())
        try:
            while True:
                job, events = self.show_job(tenant, project, job_id)
                if bar.show(job) and on_requeued is not None:
                    why = [e.message for e in events if "-> queued" in e.message]
                    on_requeued(job_id, why[-1] if why else "requeued")
                if job.state in FINISHED:
                    return job
                time.sleep(poll_s)
        finally:
            bar.close()

    def execute(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *,
        result: type[Any] | None = None, inline: bool = False, name: str = "", priority: str = "normal",
        preemptible: bool | None = None, workers: int = 1, request: Request | None = None,
        retries: int = 1, progress: Any = None, on_queued: Callable[[str], None] | None = None,
        on_requeued: Callable[[str, str], None] | None = None,
    ) -> Any:  # fmt: skip
        """Submit the job to the server and follow it to its end: its result as ``result`` (the kind's
        result model), or as JSON without one."""
        if inline:
            raise InputError("--inline runs in this process, on this machine's workspace: over the API "
                             "the work runs as a job on the server's pool (leave out --inline)",
                             field="inline")  # fmt: skip
        job_id = self.submit_job(
            tenant, project, kind, spec, name=name, priority=priority, preemptible=preemptible,
            workers=workers, request=request, retries=retries,
        )  # fmt: skip
        if on_queued is not None:
            on_queued(job_id)
        job = self.follow_job(tenant, project, job_id, progress, on_requeued=on_requeued)
        if job.state != "succeeded":
            raise ImtsError(f"job {job_id} {job.state}: {job.error or job.reason}")
        return result.model_validate(job.result) if result is not None else job.result

    def job_logs(self, tenant: str, project: str, job_id: str) -> str:
        return self._text(f"{self._project(tenant, project)}/jobs/{job_id}/logs")

    def follow_job_logs(self, tenant: str, project: str, job_id: str) -> Iterator[JobLogEvent]:
        """The job's logs live (server-sent events), then its end state; a broken connection resumes
        where it stopped (``Last-Event-ID``)."""
        path = f"{API}{self._project(tenant, project)}/jobs/{job_id}/logs/stream"
        last: str | None = None
        for attempt in range(6):
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream("GET", path, headers=headers, timeout=None) as r:
                    if not r.is_success:
                        r.read()
                        _checked(r)
                    for event, event_id, data in _sse(r.iter_lines()):
                        if event == "end":
                            yield JobLogEvent(state=data["state"])
                            return
                        if event == "log":
                            last = event_id or last
                            yield JobLogEvent(attempt=data["attempt"], text=data["text"])
                return
            except httpx.TransportError as exc:
                if attempt == 5:
                    raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
                time.sleep(2**attempt)

    def delete_job(self, tenant: str, project: str, job_id: str) -> tuple[str, bool]:
        path = f"{self._project(tenant, project)}/jobs/{job_id}"
        state = str(self._call(dict[str, Any], "DELETE", path)["state"])
        return state, state == "deleted"

    # --- the closed loop ---

    def start_loop(self, tenant: str, project: str, spec: LoopSpec) -> LoopView:
        from imts.flywheel.service import LoopView

        body = spec.model_dump(mode="json", exclude_unset=True)
        return self._call(LoopView, "POST", f"{self._project(tenant, project)}/loops", json=body)  # type: ignore[no-any-return]

    def get_loop(self, tenant: str, project: str, loop_id: str | None) -> LoopView:
        from imts.flywheel.service import LoopView

        if loop_id:
            return self._get(LoopView, f"{self._project(tenant, project)}/loops/{loop_id}")  # type: ignore[no-any-return]
        loops = self.list_loops(tenant, project)
        if not loops:
            raise NotFoundError("no loop in this project yet: `imts loop start --intent ... --data ...`")
        return loops[0]

    def list_loops(self, tenant: str, project: str) -> list[LoopView]:
        from imts.flywheel.service import LoopView

        return self._get(list[LoopView], f"{self._project(tenant, project)}/loops")  # type: ignore[no-any-return]

    def loop_log(self, tenant: str, project: str, loop_id: str) -> list[IterationView]:
        from imts.flywheel.service import IterationView

        return self._get(list[IterationView], f"{self._project(tenant, project)}/loops/{loop_id}/log")  # type: ignore[no-any-return]

    def loop_action(self, tenant: str, project: str, loop_id: str, action: str) -> LoopView:
        from imts.flywheel.service import LoopView

        path = f"{self._project(tenant, project)}/loops/{loop_id}/{action}"
        return self._call(LoopView, "POST", path)  # type: ignore[no-any-return]

    def follow_loop(self, tenant: str, project: str, loop_id: str, progress: Any = None) -> LoopView:
        """Wait until the loop stops, finishes or fails (or waits for approval), each step's job live."""
        from imts.flywheel.service import StepView

        progress = progress or NullProgress()
        shown: set[str] = set()
        while True:
            view = self.get_loop(tenant, project, loop_id)
            if view.status != "running":
                return view
            path = f"{self._project(tenant, project)}/loops/{loop_id}/steps"
            steps: list[StepView] = self._get(list[StepView], path)
            step = next((s for s in reversed(steps) if s.job_id and s.job_id not in shown), None)
            if step is not None and step.job_id is not None and step.state not in (*FINISHED, "skipped"):
                shown.add(step.job_id)
                progress.log(f"[bold]iteration {step.iteration}: {step.phase}[/] (job {step.job_id})")
                self.follow_job(tenant, project, step.job_id, progress)
            else:
                time.sleep(1.0)

    # --- loop reports, dataset export, embeddings, fixes and the review queue ---

    def loop_report(self, tenant: str, project: str, loop_id: str, fmt: str, lang: str) -> str:
        path = f"{self._project(tenant, project)}/loops/{loop_id}/report"
        return self._text(path, format=fmt, lang=lang)

    def export_dataset(
        self, tenant: str, project: str, ref: str, dest: Path, fmt: str | None
    ) -> ExportResult:
        """The rows streamed into ``dest`` (a temporary file beside it, renamed once whole): JSON Lines or
        Parquet; a Hugging Face folder is written only on the server's own workspace."""
        import os

        from imts.data.export import count_rows, format_of

        fmt = fmt or format_of(dest)
        if fmt == "hf":
            raise InputError("over the API a version is exported as .jsonl or .parquet (a Hugging Face "
                             "folder is written only on the server's workspace)", field="format")  # fmt: skip
        path = f"{API}{self._project(tenant, project)}/datasets/refs/{ref}/export"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with self.http.stream("GET", path, params={"format": fmt}, timeout=None) as r:
                if not r.is_success:
                    r.read()
                    _checked(r)
                with tmp.open("wb") as f:
                    for block in r.iter_bytes():
                        f.write(block)
            rows = count_rows(tmp, fmt)  # type: ignore[arg-type]
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return ExportResult(path=str(dest), format=fmt, rows=rows)

    def embed_dataset(self, tenant: str, project: str, ref: str, progress: Any = None) -> EmbeddingInfo:
        from imts.data.vectors import EmbeddingInfo

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/embeddings"
        return self._call(EmbeddingInfo, "POST", path, timeout=None)  # type: ignore[no-any-return]

    def _fix_body(self, spec: FixSpec, job: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = spec.model_dump(mode="json", exclude={"data"}, exclude_defaults=True)
        return {"fix": fields, **({"job": job} if job else {})}

    def plan_fix(self, tenant: str, project: str, spec: FixSpec) -> FixReport:
        from imts.optimise.spec import FixReport

        path = f"{self._project(tenant, project)}/datasets/refs/{spec.data}/fix/plan"
        return self._call(FixReport, "POST", path, json=self._fix_body(spec), timeout=None)  # type: ignore[no-any-return]

    def fix_dataset(
        self, tenant: str, project: str, spec: FixSpec, inline: bool | None, progress: Any = None,
        on_queued: Callable[[str], None] | None = None,
    ) -> FixReport:  # fmt: skip
        """The fix as a ``data_fix`` job on the server's pool, followed to its end: its report."""
        from imts.optimise.spec import FixReport

        if inline:
            raise InputError(
                "--inline runs in this process, on this machine's workspace: over the API the fix runs as "
                "a job on the server's pool (--job)",
                field="inline",
            )
        path = f"{self._project(tenant, project)}/datasets/refs/{spec.data}/fix"
        job = {"request": Request(cpus=1).model_dump(mode="json")}
        queued: JobView = self._call(JobView, "POST", path, json=self._fix_body(spec, job))
        if on_queued is not None:
            on_queued(queued.id)
        done = self.follow_job(tenant, project, queued.id, progress)
        if done.state != "succeeded":
            raise ImtsError(f"job {done.id} {done.state}: {done.error or done.reason}")
        return FixReport.model_validate(done.result)

    def pii_scan(self, tenant: str, project: str, ref: str, progress: Any = None) -> PiiScan:
        from imts.optimise.pii.scan import PiiScan

        path = f"{self._project(tenant, project)}/datasets/refs/{ref}/pii"
        return self._call(PiiScan, "GET", path, timeout=None)  # type: ignore[no-any-return]

    def list_reviews(self, tenant: str, project: str, status: str | None) -> list[ReviewView]:
        from imts.optimise.service import ReviewView

        path = f"{self._project(tenant, project)}/reviews"
        return self._get(list[ReviewView], path, status=status or "all")  # type: ignore[no-any-return]

    def decide_review(
        self, tenant: str, project: str, item_id: str, accept: bool, reason: str = ""
    ) -> ReviewView:
        from imts.optimise.service import ReviewView

        path = f"{self._project(tenant, project)}/reviews/{item_id}"
        return self._call(ReviewView, "POST", path, json={"accept": accept, "reason": reason})  # type: ignore[no-any-return]

    def commit_reviewed(self, tenant: str, project: str, fix_version: str) -> VersionInfo:
        path = f"{self._project(tenant, project)}/datasets/refs/{fix_version}/reviewed"
        return self._call(VersionInfo, "POST", path, timeout=None)  # type: ignore[no-any-return]

    # --- the registry: base models, aliases, tags, archive, delete, export, compare, card ---

    def pull_base_model(self, name: str, progress: Any = None) -> BaseModelView:
        """The server obtains the catalogued model into its own cache (platform administrators)."""
        return self._call(BaseModelView, "POST", "/base-models/pull", json={"name": name}, timeout=None)  # type: ignore[no-any-return]

    def _model(self, tenant: str, project: str, ref: str) -> str:
        return f"{self._project(tenant, project)}/models/{ref}"

    def set_alias(self, tenant: str, project: str, version: str, alias: str) -> AliasView:
        return self._call(AliasView, "PUT", f"{self._model(tenant, project, version)}/aliases/{alias}")  # type: ignore[no-any-return]

    def remove_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasView:
        return self._call(AliasView, "DELETE", f"{self._model(tenant, project, model)}/aliases/{alias}")  # type: ignore[no-any-return]

    def alias_history(
        self, tenant: str, project: str, model: str, alias: str | None, at: datetime | None
    ) -> list[AliasView]:
        path = f"{self._model(tenant, project, model)}/aliases"
        return self._get(list[AliasView], path, alias=alias, at=at)  # type: ignore[no-any-return]

    def alias_state(self, tenant: str, project: str) -> AliasState:
        return self._get(AliasState, f"{self._project(tenant, project)}/aliases")  # type: ignore[no-any-return]

    def protect_alias(
        self, tenant: str, project: str, model: str, alias: str, min_role: str
    ) -> AliasProtectionView:
        path = f"{self._model(tenant, project, model)}/aliases/{alias}/protection"
        return self._call(AliasProtectionView, "PUT", path, json={"min_role": min_role})  # type: ignore[no-any-return]

    def unprotect_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasProtectionView:
        path = f"{self._model(tenant, project, model)}/aliases/{alias}/protection"
        return self._call(AliasProtectionView, "DELETE", path)  # type: ignore[no-any-return]

    def tag_model(
        self, tenant: str, project: str, version: str, add: list[str], remove: list[str]
    ) -> ModelVersionView:
        path = f"{self._model(tenant, project, version)}/tags"
        return self._call(ModelVersionView, "PATCH", path, json={"add": add, "remove": remove})  # type: ignore[no-any-return]

    def archive_model(self, tenant: str, project: str, version: str, archived: bool) -> ModelVersionView:
        path = f"{self._model(tenant, project, version)}/{'archive' if archived else 'unarchive'}"
        return self._call(ModelVersionView, "POST", path)  # type: ignore[no-any-return]

    def delete_model(self, tenant: str, project: str, version: str) -> ModelVersionView:
        return self._call(ModelVersionView, "DELETE", self._model(tenant, project, version))  # type: ignore[no-any-return]

    def export_model(
        self, tenant: str, project: str, version: str, fmt: str, out: Path | None, gguf_type: str
    ) -> ModelExport:
        """Exported and checked on the server (into its ``exports/NAME-N/FORMAT``); with ``out``, its
        files are then downloaded into that folder of this machine (a tar, unpacked)."""
        from imts.registry.export import ExportResult as ModelExport

        base = self._model(tenant, project, version)
        body = {"format": fmt, "gguf_type": gguf_type}
        done: ModelExport = self._call(ModelExport, "POST", f"{base}/exports", json=body, timeout=None)
        if out is None:
            return done
        import tarfile
        import tempfile

        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as tmp:
            with self.http.stream("GET", f"{API}{base}/exports/{fmt}", timeout=None) as r:
                if not r.is_success:
                    r.read()
                    _checked(r)
                for block in r.iter_bytes():
                    tmp.write(block)
            tmp.seek(0)
            with tarfile.open(fileobj=tmp) as tar:
                members = tar.getmembers()
                for m in members:  # NAME-N-FORMAT/file -> out/file: the folder holds the files, as locally
                    m.name = m.name.split("/", 1)[1] if "/" in m.name else m.name
                tar.extractall(out, members=members, filter="data")
        return done.model_copy(update={"path": out})

    def compare_models(self, tenant: str, project: str, a: str, b: str, lang: str) -> VersionComparison:
        from imts.evals.versions import VersionComparison

        path = f"{self._model(tenant, project, a)}/compare"
        return self._get(VersionComparison, path, other=b, lang=lang)  # type: ignore[no-any-return]

    def model_card(self, tenant: str, project: str, version: str) -> ModelCardView:
        from imts.evals.card import ModelCardView

        return self._get(ModelCardView, f"{self._model(tenant, project, version)}/card")  # type: ignore[no-any-return]

    # --- deployments ---

    def list_deployments(self, tenant: str, project: str) -> list[DeploymentView]:
        from imts.registry.deployments import DeploymentView

        return self._get(list[DeploymentView], f"{self._project(tenant, project)}/deployments")  # type: ignore[no-any-return]

    def add_deployment(
        self, tenant: str, project: str, model: str, alias: str | None, name: str | None
    ) -> DeploymentView:
        from imts.registry.deployments import DeploymentView

        body = {"model": model, "alias": alias, "name": name}
        return self._call(DeploymentView, "POST", f"{self._project(tenant, project)}/deployments", json=body)  # type: ignore[no-any-return]

    def remove_deployment(self, tenant: str, project: str, name: str) -> DeploymentView:
        from imts.registry.deployments import DeploymentView

        return self._call(DeploymentView, "DELETE", f"{self._project(tenant, project)}/deployments/{name}")  # type: ignore[no-any-return]

    # --- the pool: allocation, costs, quotas ---

    def pool_state(self, tenant: str) -> PoolState:
        """The whole pool when the caller is a platform administrator, else as ``tenant`` sees it (its
        own jobs; the other tenants as totals)."""
        from imts.services.pool import PoolState

        path = "/pool" if self.me().user.is_platform_admin else f"/tenants/{tenant}/pool"
        return self._get(PoolState, path)  # type: ignore[no-any-return]

    def tenant_costs(self, tenant: str) -> CostSummary:
        from imts.jobs.service import CostSummary

        return self._get(CostSummary, f"/tenants/{tenant}/costs")  # type: ignore[no-any-return]

    def quota(self, tenant: str) -> QuotaView:
        from imts.services.pool import QuotaView

        return self._get(QuotaView, f"/tenants/{tenant}/quota")  # type: ignore[no-any-return]

    # --- plain text ---

    def _text(self, path: str, **params: Any) -> str:
        try:
            r = self.http.get(API + path, params=_params(**params))
        except httpx.TransportError as exc:
            raise ImtsError(f"cannot reach the server {self.server} ({type(exc).__name__})") from None
        if not r.is_success:
            _checked(r)
        return r.text


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str | None, Any]]:
    """(event, id, data as JSON) of each server-sent event."""
    event, event_id, data = "message", None, []
    for line in lines:
        if not line:
            if data:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue  # keep-alive comment
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
    if data:
        yield event, event_id, json.loads("\n".join(data))


__all__ = ["ApiClient", "ApiError", "connect"]
