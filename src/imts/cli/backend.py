"""The one seam between a CLI command and where it acts: this machine's database (``LocalBackend``,
the services called directly, the local user acting as platform administrator) or an IMTS server
(``imts.api.client.ApiClient`` with ``--server`` / ``IMTS_SERVER`` and ``IMTS_API_KEY``). Both have
the same methods and return the same typed models; ``common.backend()`` picks one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the CLI imports what a command needs when it runs
    from pydantic import BaseModel

    from imts.analysis.pipeline import Analysis, AnalysisOptions
    from imts.analysis.service import AnalysisSummary
    from imts.data.jobs import SplitResult
    from imts.data.vectors import EmbeddingInfo
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
    from imts.evals.card import ModelCardView
    from imts.evals.versions import VersionComparison
    from imts.flywheel.service import IterationView, LoopView
    from imts.flywheel.spec import LoopSpec
    from imts.jobs.pool import Request
    from imts.jobs.service import CostSummary
    from imts.jobs.views import JobEventView, JobLogEvent, JobView
    from imts.optimise.pii.scan import PiiScan
    from imts.optimise.service import ReviewView
    from imts.optimise.spec import FixReport, FixSpec
    from imts.registry import export as model_export
    from imts.registry.deployments import DeploymentView
    from imts.registry.views import (
        AliasProtectionView,
        AliasState,
        AliasView,
        BaseModelView,
        ModelVersionView,
    )
    from imts.services.audit import AuditEntryView, AuditVerdict
    from imts.services.identity import CreatedKey, KeyView, MemberView, UserView
    from imts.services.pool import PoolState, QuotaView
    from imts.services.tenancy import ProjectView, TenantView
    from imts.services.webhooks import CreatedWebhook, DeliveryView, WebhookView
    from imts.store.runs import RunComparison, RunEventView, RunRecord, RunView

OnQueued = Callable[[str], None]
OnRequeued = Callable[[str, str], None]


class Backend(Protocol):
    """What the commands that act locally or on a server need (``imts --server URL``): identity, audit,
    webhooks, jobs (submit, follow, logs), datasets, analyses, runs, models and loops."""

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
    def import_data(
        self, tenant: str, project: str, source: str, name: str | None, *, map_: str | None,
        fmt: str | None, file_type: str | None, text_unit: str, on_error: str, append: bool,
        progress: Any = None,
    ) -> VersionInfo: ...  # fmt: skip
    def import_query(
        self, tenant: str, project: str, url: str, sql: str, name: str, *, map_: str | None,
        fmt: str | None, on_error: str, progress: Any = None,
    ) -> VersionInfo: ...  # fmt: skip
    def show_dataset(self, tenant: str, project: str, ref: str, rows: int) -> VersionDetail: ...
    def preview_dataset(
        self, tenant: str, project: str, ref: str, where: str | None, limit: int, page: int
    ) -> RowsPage: ...
    def dataset_stats(self, tenant: str, project: str, ref: str, where: str | None) -> FieldStats: ...
    def split_dataset(
        self, tenant: str, project: str, ref: str, ratios: tuple[float, float, float], seed: int,
        stratify_by: str | None, ngram: int, near: float | None, into: str | None, progress: Any = None,
    ) -> SplitResult: ...  # fmt: skip
    def dedup_dataset(
        self, tenant: str, project: str, ref: str, threshold: float | None, num_perm: int,
        into: str | None, progress: Any = None,
    ) -> VersionInfo: ...  # fmt: skip
    def diff_datasets(self, tenant: str, project: str, a: str, b: str, by: str) -> DatasetDiff: ...
    def rollback_dataset(self, tenant: str, project: str, dataset: str, to: str) -> VersionInfo: ...
    def dataset_lineage(self, tenant: str, project: str, dataset: str) -> Lineage: ...
    def share_dataset(self, tenant: str, project: str, ref: str, with_project: str) -> SharedVersion: ...
    def analyze(
        self, tenant: str, project: str, ref: str, intent: str, lang: str | None,
        opts: AnalysisOptions, chat: Any = None, progress: Any = None,
    ) -> Analysis: ...  # fmt: skip
    def list_analyses(self, tenant: str, project: str, ref: str) -> list[AnalysisSummary]: ...
    def get_analysis(self, tenant: str, project: str, ref: str, analysis_id: str | None) -> Analysis: ...
    def analysis_report(
        self, tenant: str, project: str, ref: str, fmt: str, analysis_id: str | None
    ) -> str: ...
    def analysis_location(self, tenant: str, project: str, ref: str, analysis_id: str) -> str: ...
    def list_runs(self, tenant: str, project: str, kind: str | None = None) -> list[RunView]: ...
    def get_run(self, tenant: str, project: str, run_id: str) -> RunView: ...
    def show_run(self, tenant: str, project: str, run_id: str) -> tuple[RunRecord, list[RunEventView]]: ...
    def compare_runs(self, tenant: str, project: str, run_ids: list[str]) -> RunComparison: ...
    def list_base_models(self) -> list[BaseModelView]: ...
    def list_model_versions(self, tenant: str, project: str, archived: bool) -> list[ModelVersionView]: ...
    def show_model(self, tenant: str, project: str, ref: str) -> ModelVersionView: ...
    def submit_job(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *, name: str = "",
        priority: str = "normal", preemptible: bool | None = None, workers: int = 1,
        request: Request | None = None, retries: int = 1,
    ) -> str: ...  # fmt: skip
    def execute(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *,
        result: type[Any] | None = None, inline: bool = False, name: str = "", priority: str = "normal",
        preemptible: bool | None = None, workers: int = 1, request: Request | None = None,
        retries: int = 1, progress: Any = None, on_queued: OnQueued | None = None,
        on_requeued: OnRequeued | None = None,
    ) -> Any: ...  # fmt: skip
    def job_logs(self, tenant: str, project: str, job_id: str) -> str: ...
    def follow_job_logs(self, tenant: str, project: str, job_id: str) -> Iterator[JobLogEvent]: ...
    def delete_job(self, tenant: str, project: str, job_id: str) -> tuple[str, bool]: ...
    def start_loop(self, tenant: str, project: str, spec: LoopSpec) -> LoopView: ...
    def get_loop(self, tenant: str, project: str, loop_id: str | None) -> LoopView: ...
    def list_loops(self, tenant: str, project: str) -> list[LoopView]: ...
    def loop_log(self, tenant: str, project: str, loop_id: str) -> list[IterationView]: ...
    def loop_action(self, tenant: str, project: str, loop_id: str, action: str) -> LoopView: ...
    def follow_loop(self, tenant: str, project: str, loop_id: str, progress: Any = None) -> LoopView: ...
    def list_webhooks(self, tenant: str) -> list[WebhookView]: ...
    def add_webhook(
        self, tenant: str, url: str, events: list[str], description: str = ""
    ) -> CreatedWebhook: ...
    def remove_webhook(self, tenant: str, webhook_id: str) -> WebhookView: ...
    def test_webhook(self, tenant: str, webhook_id: str) -> DeliveryView: ...
    # issue 12, item 3: loop reports, dataset export / embeddings / fixes / reviews, the registry's
    # aliases, tags and exports, deployments, the pool and its costs, the memory plan
    def loop_report(self, tenant: str, project: str, loop_id: str, fmt: str, lang: str) -> str: ...
    def export_dataset(
        self, tenant: str, project: str, ref: str, dest: Path, fmt: str | None
    ) -> ExportResult: ...
    def embed_dataset(self, tenant: str, project: str, ref: str, progress: Any = None) -> EmbeddingInfo: ...
    def plan_fix(self, tenant: str, project: str, spec: FixSpec) -> FixReport: ...
    def fix_dataset(
        self, tenant: str, project: str, spec: FixSpec, inline: bool | None, progress: Any = None,
        on_queued: OnQueued | None = None,
    ) -> FixReport: ...  # fmt: skip
    def pii_scan(self, tenant: str, project: str, ref: str, progress: Any = None) -> PiiScan: ...
    def list_reviews(self, tenant: str, project: str, status: str | None) -> list[ReviewView]: ...
    def decide_review(
        self, tenant: str, project: str, item_id: str, accept: bool, reason: str = ""
    ) -> ReviewView: ...
    def commit_reviewed(self, tenant: str, project: str, fix_version: str) -> VersionInfo: ...
    def pull_base_model(self, name: str, progress: Any = None) -> BaseModelView: ...
    def set_alias(self, tenant: str, project: str, version: str, alias: str) -> AliasView: ...
    def remove_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasView: ...
    def alias_history(
        self, tenant: str, project: str, model: str, alias: str | None, at: datetime | None
    ) -> list[AliasView]: ...
    def alias_state(self, tenant: str, project: str) -> AliasState: ...
    def protect_alias(
        self, tenant: str, project: str, model: str, alias: str, min_role: str
    ) -> AliasProtectionView: ...
    def unprotect_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasProtectionView: ...
    def tag_model(
        self, tenant: str, project: str, version: str, add: list[str], remove: list[str]
    ) -> ModelVersionView: ...
    def archive_model(self, tenant: str, project: str, version: str, archived: bool) -> ModelVersionView: ...
    def delete_model(self, tenant: str, project: str, version: str) -> ModelVersionView: ...
    def export_model(
        self, tenant: str, project: str, version: str, fmt: str, out: Path | None, gguf_type: str
    ) -> model_export.ExportResult: ...
    def compare_models(self, tenant: str, project: str, a: str, b: str, lang: str) -> VersionComparison: ...
    def model_card(self, tenant: str, project: str, version: str) -> ModelCardView: ...
    def list_deployments(self, tenant: str, project: str) -> list[DeploymentView]: ...
    def add_deployment(
        self, tenant: str, project: str, model: str, alias: str | None, name: str | None
    ) -> DeploymentView: ...
    def remove_deployment(self, tenant: str, project: str, name: str) -> DeploymentView: ...
    def pool_state(self, tenant: str) -> PoolState: ...
    def tenant_costs(self, tenant: str) -> CostSummary: ...
    def quota(self, tenant: str) -> QuotaView: ...
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

    # --- datasets ---

    def import_data(
        self, tenant: str, project: str, source: str, name: str | None, *, map_: str | None,
        fmt: str | None, file_type: str | None, text_unit: str, on_error: str, append: bool,
        progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.import_file(
            self._project(tenant, project), source, name, map_=map_, fmt=fmt, file_type=file_type,
            text_unit=text_unit, on_error=on_error, progress=progress, append=append,
        )  # fmt: skip

    def import_query(
        self, tenant: str, project: str, url: str, sql: str, name: str, *, map_: str | None,
        fmt: str | None, on_error: str, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.import_query(
            self._project(tenant, project), url, sql, name, map_=map_, fmt=fmt, on_error=on_error,
            progress=progress,
        )  # fmt: skip

    def show_dataset(self, tenant: str, project: str, ref: str, rows: int) -> VersionDetail:
        from imts.data import service

        return service.show(self._project(tenant, project), ref, rows)

    def preview_dataset(
        self, tenant: str, project: str, ref: str, where: str | None, limit: int, page: int
    ) -> RowsPage:
        from imts.data import service

        return service.preview(self._project(tenant, project), ref, where, limit, page)

    def dataset_stats(self, tenant: str, project: str, ref: str, where: str | None) -> FieldStats:
        from imts.data import service

        return service.stats(self._project(tenant, project), ref, where)

    def split_dataset(
        self, tenant: str, project: str, ref: str, ratios: tuple[float, float, float], seed: int,
        stratify_by: str | None, ngram: int, near: float | None, into: str | None, progress: Any = None,
    ) -> SplitResult:  # fmt: skip
        spec = {"data": ref, "ratios": ratios, "seed": seed, "stratify_by": stratify_by, "ngram": ngram,
                "near": near, "into": into}  # fmt: skip
        return self.execute(tenant, project, "split", spec, inline=True, progress=progress)  # type: ignore[no-any-return]

    def dedup_dataset(
        self, tenant: str, project: str, ref: str, threshold: float | None, num_perm: int,
        into: str | None, progress: Any = None,
    ) -> VersionInfo:  # fmt: skip
        from imts.data import service

        return service.dedup(self._project(tenant, project), ref, threshold, num_perm, into, progress)

    def diff_datasets(self, tenant: str, project: str, a: str, b: str, by: str) -> DatasetDiff:
        from imts.data import service

        return service.diff(self._project(tenant, project), a, b, by)  # type: ignore[arg-type]

    def rollback_dataset(self, tenant: str, project: str, dataset: str, to: str) -> VersionInfo:
        from imts.data import service

        return service.rollback(self._project(tenant, project), dataset, to)

    def dataset_lineage(self, tenant: str, project: str, dataset: str) -> Lineage:
        from imts.data import service

        return service.lineage(self._project(tenant, project), dataset)

    def share_dataset(self, tenant: str, project: str, ref: str, with_project: str) -> SharedVersion:
        from imts.data import service

        return service.share(self._project(tenant, project), ref, with_project)

    # --- dataset analyses ---

    def analyze(
        self, tenant: str, project: str, ref: str, intent: str, lang: str | None,
        opts: AnalysisOptions, chat: Any = None, progress: Any = None,
    ) -> Analysis:  # fmt: skip
        from imts.analysis import service

        ctx = self._project(tenant, project)
        return service.analyze(ctx, ref, intent, lang=lang, opts=opts, backend=chat, progress=progress)

    def list_analyses(self, tenant: str, project: str, ref: str) -> list[AnalysisSummary]:
        from imts.analysis import service

        return service.list_analyses(self._project(tenant, project), ref)

    def get_analysis(self, tenant: str, project: str, ref: str, analysis_id: str | None) -> Analysis:
        from imts.analysis import service

        return service.get_analysis(self._project(tenant, project), ref, analysis_id)

    def analysis_report(self, tenant: str, project: str, ref: str, fmt: str, analysis_id: str | None) -> str:
        from imts.analysis import service

        return service.report_path(self._project(tenant, project), ref, fmt, analysis_id).read_text("utf-8")

    def analysis_location(self, tenant: str, project: str, ref: str, analysis_id: str) -> str:
        return str(self._project(tenant, project).artifacts.path(f"analyses/{analysis_id}"))

    # --- runs and models ---

    def list_runs(self, tenant: str, project: str, kind: str | None = None) -> list[RunView]:
        from imts.store import runs

        return runs.search(self._project(tenant, project), kind=kind)

    def get_run(self, tenant: str, project: str, run_id: str) -> RunView:
        from imts.store import runs

        return runs.get(self._project(tenant, project), run_id)

    def show_run(self, tenant: str, project: str, run_id: str) -> tuple[RunRecord, list[RunEventView]]:
        from imts.store import runs

        ctx = self._project(tenant, project)
        return runs.record(ctx, run_id), runs.events(ctx, run_id)

    def compare_runs(self, tenant: str, project: str, run_ids: list[str]) -> RunComparison:
        from imts.store import runs

        return runs.compare(self._project(tenant, project), run_ids)

    def list_base_models(self) -> list[BaseModelView]:
        from imts.registry import service

        return service.list_base_models(self.ctx)

    def list_model_versions(self, tenant: str, project: str, archived: bool) -> list[ModelVersionView]:
        from imts.registry import service

        return service.list_model_versions(self._project(tenant, project), include_archived=archived)

    def show_model(self, tenant: str, project: str, ref: str) -> ModelVersionView:
        from imts.registry import service

        return service.get_model_version(self._project(tenant, project), ref)

    # --- jobs: submit, run to the end, logs ---

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

    def submit_job(
        self, tenant: str, project: str, kind: str, spec: dict[str, Any] | BaseModel, *, name: str = "",
        priority: str = "normal", preemptible: bool | None = None, workers: int = 1,
        request: Request | None = None, retries: int = 1,
    ) -> str:  # fmt: skip
        from imts.jobs import service

        ctx = self._project(tenant, project)
        sub = self._submission(ctx, kind, spec, False, name, priority, preemptible, workers, request, retries)
        job_id = service.submit(ctx, sub)
        service.settle(ctx)
        return job_id

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

    def job_logs(self, tenant: str, project: str, job_id: str) -> str:
        from imts.jobs import service
        from imts.jobs.executors import log_path

        ctx = self._project(tenant, project)
        job = service.get(ctx, job_id)
        parts = []
        for a in range(1, job.attempt + 1):
            path = log_path(ctx.settings, job_id, a)
            if path.exists():
                parts.append(f"== attempt {a} ==\n" + path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def follow_job_logs(self, tenant: str, project: str, job_id: str) -> Iterator[JobLogEvent]:
        """The latest attempt's log as it grows (a new attempt from its start), then the end state;
        scheduling passes run here while no scheduler daemon runs."""
        import time

        from imts.jobs import service
        from imts.jobs.executors import log_path
        from imts.jobs.views import JobLogEvent

        ctx = self._project(tenant, project)
        attempt, pos = 0, 0
        while True:
            service.settle(ctx)
            row = service.get(ctx, job_id)
            if row.attempt != attempt:
                attempt, pos = row.attempt, 0
            path = log_path(ctx.settings, job_id, attempt)
            if path.exists():
                with path.open("r", encoding="utf-8", errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
                if chunk:
                    yield JobLogEvent(attempt=attempt, text=chunk)
            if row.state in ("succeeded", "failed", "cancelled", "paused"):
                yield JobLogEvent(attempt=attempt, state=row.state)
                return
            time.sleep(0.5)

    def delete_job(self, tenant: str, project: str, job_id: str) -> tuple[str, bool]:
        """The state the delete led to (``deleted``) and whether the scheduler has handled it yet."""
        from imts.jobs import service

        done = service.request_and_wait(self._project(tenant, project), job_id, "delete")
        return ("deleted" if done.job is None else done.job.state), done.handled

    # --- the closed loop ---

    def start_loop(self, tenant: str, project: str, spec: LoopSpec) -> LoopView:
        from imts.flywheel import service

        return service.start(self._project(tenant, project), spec)

    def get_loop(self, tenant: str, project: str, loop_id: str | None) -> LoopView:
        """The loop (the project's latest when ``loop_id`` is None); looking moves it on when no
        scheduler daemon runs."""
        from imts.core.errors import NotFoundError
        from imts.flywheel import service
        from imts.jobs.service import settle

        ctx = self._project(tenant, project)
        settle(ctx)
        if loop_id:
            return service.get(ctx, loop_id)
        loops = service.list_loops(ctx, limit=1)
        if not loops:
            raise NotFoundError("no loop in this project yet: `imts loop start --intent ... --data ...`")
        return loops[0]

    def list_loops(self, tenant: str, project: str) -> list[LoopView]:
        from imts.flywheel import service

        return service.list_loops(self._project(tenant, project))

    def loop_log(self, tenant: str, project: str, loop_id: str) -> list[IterationView]:
        from imts.flywheel import service

        return service.iterations(self._project(tenant, project), loop_id)

    def loop_action(self, tenant: str, project: str, loop_id: str, action: str) -> LoopView:
        """``stop``, ``resume`` or ``approve`` the loop; its view after the request."""
        from imts.flywheel import service

        act = {"stop": service.stop, "resume": service.resume, "approve": service.approve}[action]
        return act(self._project(tenant, project), loop_id)

    def follow_loop(self, tenant: str, project: str, loop_id: str, progress: Any = None) -> LoopView:
        from imts.flywheel import service

        return service.follow(self._project(tenant, project), loop_id, progress)

    # --- loop reports, dataset export, embeddings, fixes and the review queue ---

    def loop_report(self, tenant: str, project: str, loop_id: str, fmt: str, lang: str) -> str:
        """The loop's report (``html`` or ``md``), written now into the workspace, as text."""
        from imts.flywheel import report, service

        ctx = self._project(tenant, project)
        paths = report.write(ctx, service.get(ctx, loop_id), service.iterations(ctx, loop_id), lang)
        return Path(paths[fmt]).read_text(encoding="utf-8")

    def export_dataset(
        self, tenant: str, project: str, ref: str, dest: Path, fmt: str | None
    ) -> ExportResult:
        from imts.data import service

        return service.export_version(self._project(tenant, project), ref, dest, fmt)

    def embed_dataset(self, tenant: str, project: str, ref: str, progress: Any = None) -> EmbeddingInfo:
        from imts.data import service

        return service.embed(self._project(tenant, project), ref, progress)

    def plan_fix(self, tenant: str, project: str, spec: FixSpec) -> FixReport:
        from imts.optimise import service

        return service.plan_fix(self._project(tenant, project), spec)

    def fix_dataset(
        self, tenant: str, project: str, spec: FixSpec, inline: bool | None, progress: Any = None,
        on_queued: OnQueued | None = None,
    ) -> FixReport:  # fmt: skip
        """Run the fix here (``inline``, the default on this machine) or as a job followed to its end."""
        from imts.jobs import service as jobs

        sub = jobs.Submission("data_fix", spec.model_dump(mode="json"), request=jobs.Request(cpus=1))
        ctx = self._project(tenant, project)
        inline = True if inline is None else inline
        return jobs.execute(ctx, sub, inline=inline, progress=progress, on_queued=on_queued)  # type: ignore[no-any-return]

    def pii_scan(self, tenant: str, project: str, ref: str, progress: Any = None) -> PiiScan:
        from imts.optimise import service

        return service.pii_scan(self._project(tenant, project), ref, progress)

    def list_reviews(self, tenant: str, project: str, status: str | None) -> list[ReviewView]:
        from imts.optimise import service

        return service.list_reviews(self._project(tenant, project), status)

    def decide_review(
        self, tenant: str, project: str, item_id: str, accept: bool, reason: str = ""
    ) -> ReviewView:
        from imts.optimise import service

        return service.decide(self._project(tenant, project), item_id, accept, reason)

    def commit_reviewed(self, tenant: str, project: str, fix_version: str) -> VersionInfo:
        from imts.optimise import service

        return service.commit_reviewed(self._project(tenant, project), fix_version)

    # --- the registry: base models, aliases, tags, archive, delete, export, compare, card ---

    def pull_base_model(self, name: str, progress: Any = None) -> BaseModelView:
        from imts.registry import service

        return service.pull_base_model(self.ctx, name, progress)

    def set_alias(self, tenant: str, project: str, version: str, alias: str) -> AliasView:
        from imts.registry import service

        return service.set_alias(self._project(tenant, project), version, alias)

    def remove_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.remove_alias(ctx, service.get_model_version(ctx, model).name, alias)

    def alias_history(
        self, tenant: str, project: str, model: str, alias: str | None, at: datetime | None
    ) -> list[AliasView]:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.alias_history(ctx, service.get_model_version(ctx, model).name, alias, at)

    def alias_state(self, tenant: str, project: str) -> AliasState:
        from imts.registry import service

        return service.alias_state(self._project(tenant, project))

    def protect_alias(
        self, tenant: str, project: str, model: str, alias: str, min_role: str
    ) -> AliasProtectionView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.protect_alias(ctx, service.get_model_version(ctx, model).name, alias, min_role)

    def unprotect_alias(self, tenant: str, project: str, model: str, alias: str) -> AliasProtectionView:
        from imts.registry import service

        ctx = self._project(tenant, project)
        return service.unprotect_alias(ctx, service.get_model_version(ctx, model).name, alias)

    def tag_model(
        self, tenant: str, project: str, version: str, add: list[str], remove: list[str]
    ) -> ModelVersionView:
        from imts.registry import service

        return service.tag_model_version(self._project(tenant, project), version, add, remove)

    def archive_model(self, tenant: str, project: str, version: str, archived: bool) -> ModelVersionView:
        from imts.registry import service

        return service.archive_model_version(self._project(tenant, project), version, archived=archived)

    def delete_model(self, tenant: str, project: str, version: str) -> ModelVersionView:
        from imts.registry import service

        return service.delete_model_version(self._project(tenant, project), version)

    def export_model(
        self, tenant: str, project: str, version: str, fmt: str, out: Path | None, gguf_type: str
    ) -> model_export.ExportResult:
        from imts.registry import service

        return service.export_model_version(self._project(tenant, project), version, fmt, out, gguf_type)

    def compare_models(self, tenant: str, project: str, a: str, b: str, lang: str) -> VersionComparison:
        from imts.evals.report.i18n import check_lang
        from imts.evals.versions import compare_versions

        return compare_versions(self._project(tenant, project), a, b, check_lang(lang))

    def model_card(self, tenant: str, project: str, version: str) -> ModelCardView:
        from imts.evals.card import model_card

        return model_card(self._project(tenant, project), version)

    # --- deployments ---

    def list_deployments(self, tenant: str, project: str) -> list[DeploymentView]:
        from imts.registry import service

        return service.list_deployments(self._project(tenant, project))

    def add_deployment(
        self, tenant: str, project: str, model: str, alias: str | None, name: str | None
    ) -> DeploymentView:
        from imts.registry import service

        return service.add_deployment(self._project(tenant, project), model, alias, name)

    def remove_deployment(self, tenant: str, project: str, name: str) -> DeploymentView:
        from imts.registry import service

        return service.remove_deployment(self._project(tenant, project), name)

    # --- the pool: allocation, costs, quotas ---

    def pool_state(self, tenant: str) -> PoolState:
        """The whole pool: the local user is a platform administrator. One scheduling pass first (one
        command, one pass), so that what it shows is current."""
        from imts.jobs.service import settle
        from imts.services import pool

        settle(self.ctx, wait=True)
        return pool.pool_state(self._platform())

    def tenant_costs(self, tenant: str) -> CostSummary:
        from imts.jobs.service import costs

        return costs(self._tenant(tenant))

    def quota(self, tenant: str) -> QuotaView:
        from imts.services import pool

        return pool.quota(self._tenant(tenant))
